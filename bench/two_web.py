"""A mixed workload against ONE web process and then TWO over the same database and Redis (issue 20).

    python -m bench.two_web            # 3 rounds of a 5 s warm-up and a 30 s window per kind and side
    python -m bench.two_web --quick    # 1 round of 3 s windows: a smoke run, its figures mean nothing
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench python -m bench.two_web

Kinds (each measured on its own, then all of them mixed in one window):
- `runs_page`: the experiment page listing 25 runs (session cookie);
- `models_page`: the `/models/` page, 25 of 50 models (session cookie);
- `api_read`: `GET /api/v1/models/?page_size=50` with a read token;
- `metric_ingest`: MLflow's `runs/log-metric` through the lean path, with a write token;
- `features_online`: `POST /api/v1/features/online`, one entity x 10 features (lean path);
- `predict`: `POST /api/v1/endpoints/bench-mlp/predict`, one row of the 30-64-2 MLP (lean path);
- `mixed`: all of the above in one stream, weighted as a busy portal sees them.

Both uvicorn processes run all the time, pinned to the same web core(s); `wrk` (two threads) runs
on the last core. "1 process": both wrk threads send to A; "2 processes": one thread to A, one to
B (wrk's `setup` hook gives each thread its own address; no load balancer in between). The two
sides alternate order from round to round. The JSON says how many cores the web processes had:
on a 2-core machine both share one core with each other, so the ratio shows the cost of a second
process there, not the gain of a second core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench import wrk
from bench.common import portal_env, server

UVICORN = ["-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning",
           "--http", "httptools", "--loop", "uvloop", "portal.asgi:application"]  # fmt: skip
N_ENTITIES = 1_000
FEATS = [f"f{k}" for k in range(10)]
MIX = {"runs_page": 1, "models_page": 1, "api_read": 4, "metric_ingest": 5, "features_online": 5, "predict": 4}
CONNECTIONS = 16  # 8 per wrk thread

# Two wrk threads: `setup` points each at one of PORTS in turn; every thread cycles through the
# requests from its own offset. Percentiles come from wrk's `done` (bench/wrk.py's, shared).
LUA = """
local ports = __PORTS__
local reqs = __REQUESTS__
local threads = 0
function setup(thread)
  threads = threads + 1
  thread.addr = wrk.lookup("127.0.0.1", tostring(ports[((threads - 1) % #ports) + 1]))[1]
  thread:set("offset", threads * 7)
end
local i = 0
function init(args)
  i = offset or 0
end
function request()
  i = i + 1
  local r = reqs[(i % #reqs) + 1]
  return wrk.format(r[1], r[2], r[3], r[4])
end
"""


def cores() -> dict:
    """The web processes' cores and wrk's: wrk takes the last core, the web processes the rest."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return {"total": len(available), "web": ",".join(map(str, available)), "load": None}
    return {"total": len(available), "web": ",".join(map(str, available[:-1])), "load": str(available[-1])}


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


# --- seed ------------------------------------------------------------------------------------------
def seed() -> dict:
    """One user with a session and tokens; 50 models; an experiment with 25 runs (one running for
    ingest); a materialised feature view of 1,000 entities; the MLP endpoint following `staging`."""
    from apps.accounts import roles
    from apps.accounts.services import token_create
    from apps.core.audit import acting_as
    from bench import everyday, serving

    predict_key = serving.seed(serving.onnx_of(serving.mlp()))  # creates the user `bench`
    auth = everyday.seed()  # reuses `bench`: 50 models, a read token and a session
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.get(username="bench")
    user.groups.add(Group.objects.get(name=roles.DATA_STEWARDS))
    with acting_as(user):
        experiment, ingest_run = _seed_runs(user)
        _seed_features(user)
    _, write_key = token_create(user=user, name="bench-write", scopes=["read", "write"], expires_days=1)
    _, features_key = token_create(user=user, name="bench-features", scopes=["features"], expires_days=1)
    return {**auth, "predict": predict_key, "write": write_key, "features": features_key,
            "experiment": experiment.pk, "run": ingest_run.pk}  # fmt: skip


def _seed_runs(user):
    from apps.experiments import services

    experiment = services.experiment_create(actor=user, name="bench-runs")
    runs = [services.run_create(experiment=experiment, actor=user, name=f"run-{i:02d}", source="script")
            for i in range(25)]  # fmt: skip
    for run in runs[1:]:
        services.run_log_batch(run=run, actor=user, metrics=[{"key": "loss", "step": s, "value": 1 / (1 + s)}
                                                             for s in range(20)])  # fmt: skip
    return experiment, runs[0]


def _seed_features(user) -> None:
    import numpy as np
    import pyarrow as pa
    from django.utils import timezone

    from apps.features import services

    entity = services.entity_create(actor=user, name="e", join_keys=[{"name": "eid", "dtype": "int64"}])
    view = services.feature_view_create(actor=user, name="fv", entity=entity, ttl_seconds=86400,
                                        features=[{"name": f, "dtype": "float64"} for f in FEATS])  # fmt: skip
    now = timezone.now().replace(microsecond=0)
    rng = np.random.default_rng(3)
    cols = {
        "eid": np.arange(N_ENTITIES, dtype=np.int64),
        "event_timestamp": pa.array([now - timedelta(minutes=5)] * N_ENTITIES),
    }
    for f in FEATS:
        cols[f] = rng.standard_normal(N_ENTITIES)
    services.feature_view_ingest(view=view, actor=user, data=pa.table(cols))
    job = services.feature_view_materialize(view=view, actor=user, start=now - timedelta(hours=1), end=now)
    job = services.materialization_run(job_id=job.pk)
    if job.keys_written != N_ENTITIES:
        raise RuntimeError(f"feature materialisation wrote {job.keys_written} keys: {job.error}")


# --- requests --------------------------------------------------------------------------------------
def requests_by_kind(auth: dict) -> dict[str, list[tuple[str, str, dict, str | None]]]:
    """(method, path, headers, body) per kind: several bodies per lean-path kind, cycled by wrk."""
    from bench import serving

    rng = random.Random(1)  # noqa: S311  seeded benchmark inputs, not a secret
    session = {"Cookie": f"sessionid={auth['session']}"}

    def token(key: str) -> dict:
        return {"Authorization": f"Token {key}", "Content-Type": "application/json"}

    ingest = [json.dumps({"run_id": str(auth["run"]), "key": f"loss{k % 4}", "value": rng.random(),
                          "timestamp": 1_700_000_000_000 + k, "step": k}) for k in range(200)]  # fmt: skip
    features = [json.dumps({"features": [f"fv:{f}" for f in FEATS], "entities": {"eid": [rng.randrange(N_ENTITIES)]}})
                for _ in range(200)]  # fmt: skip
    predict = [serving.body(1, seed).decode() for seed in range(50)]
    return {
        "runs_page": [("GET", f"/experiments/{auth['experiment']}/", session, None)],
        "models_page": [("GET", "/models/", session, None)],
        "api_read": [("GET", "/api/v1/models/?page_size=50", token(auth["token"]), None)],
        "metric_ingest": [("POST", "/api/2.0/mlflow/runs/log-metric", token(auth["write"]), b) for b in ingest],
        "features_online": [("POST", "/api/v1/features/online", token(auth["features"]), b) for b in features],
        "predict": [
            ("POST", f"/api/v1/endpoints/{serving.ENDPOINT}/predict", token(auth["predict"]), b) for b in predict
        ],  # fmt: skip
    }


def mixed(kinds: dict) -> list:
    """The kinds interleaved by MIX weight, each kind cycling through its own bodies."""
    rng = random.Random(2)  # noqa: S311  a fixed interleaving, not a secret
    slots = [kind for kind, weight in MIX.items() for _ in range(weight)]
    out, cursor = [], dict.fromkeys(MIX, 0)
    for _ in range(10):
        rng.shuffle(slots)
        for kind in slots:
            out.append(kinds[kind][cursor[kind] % len(kinds[kind])])
            cursor[kind] += 1
    return out


def _lua_string(value: str) -> str:
    return json.dumps(value)  # ASCII JSON strings are valid Lua string literals


def lua_script(ports: list[int], reqs: list) -> str:
    rows = []
    for method, path, headers, body in reqs:
        header_table = "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()) + "}"
        rows.append(
            f"{{{_lua_string(method)}, {_lua_string(path)}, {header_table}, {_lua_string(body) if body else 'nil'}}}"
        )
    script = LUA.replace("__PORTS__", "{" + ", ".join(map(str, ports)) + "}")
    return script.replace("__REQUESTS__", "{\n" + ",\n".join(rows) + "\n}") + wrk._DONE  # noqa: SLF001  the shared `done` hook


def window(ports: list[int], reqs: list, *, seconds: int, load_cpu: str | None) -> dict:
    """One wrk window (two threads, CONNECTIONS connections) spread over `ports`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="two-web-", delete=False) as lua:
        lua.write(lua_script(ports, reqs))
    try:
        cmd = [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout=5s",
            "-s",
            lua.name,
            f"http://127.0.0.1:{ports[0]}/",
        ]
        done = subprocess.run(pinned(cmd, load_cpu), capture_output=True, text=True, check=True, timeout=seconds + 60)  # noqa: S603  fixed wrk argv, no shell
        out = done.stdout
    finally:
        Path(lua.name).unlink(missing_ok=True)
    raw = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    if raw["errors"] or raw["non_2xx"]:
        raise RuntimeError(f"{raw['errors']} errors ({raw['non_2xx']} non-2xx) against ports {ports}: {out[-1500:]}")
    elapsed = raw["duration_us"] / 1e6
    return {"rps": round(raw["requests"] / elapsed, 1), "p50_ms": round(raw["p50_us"] / 1000, 3),
            "p99_ms": round(raw["p99_us"] / 1000, 3), "requests": raw["requests"], "errors": raw["errors"],
            "seconds": round(elapsed, 1)}  # fmt: skip


# --- measure ---------------------------------------------------------------------------------------
def measure(
    env: dict, auth: dict, *, rounds: int, seconds: int, warmup: int, only: tuple[str, ...] | None = None
) -> dict:
    from apps.core.embedded_redis import free_port

    cpu = cores()
    kinds = requests_by_kind(auth)
    kinds["mixed"] = mixed(kinds)
    kinds = {kind: reqs for kind, reqs in kinds.items() if only is None or kind in only}
    runs: dict[str, dict[str, list]] = {kind: {"one": [], "two": []} for kind in kinds}
    loads = [wrk.load_average()]
    port_a, port_b = free_port(), free_port()
    cmd_a = pinned([sys.executable, *UVICORN, "--port", str(port_a)], cpu["web"])
    cmd_b = pinned([sys.executable, *UVICORN, "--port", str(port_b)], cpu["web"])
    sides = {"one": [port_a], "two": [port_a, port_b]}
    with server(cmd_a, env, port_a), server(cmd_b, env, port_b):
        for reqs in kinds.values():  # imports, sessions, ONNX models, caches: warm in both processes
            window(sides["two"], reqs, seconds=warmup, load_cpu=cpu["load"])
        for number in range(rounds):
            order = ("one", "two") if number % 2 == 0 else ("two", "one")
            for kind, reqs in kinds.items():
                for side in order:
                    window(sides[side], reqs, seconds=warmup, load_cpu=cpu["load"])
                    runs[kind][side].append(window(sides[side], reqs, seconds=seconds, load_cpu=cpu["load"]))
            loads.append(wrk.load_average())
    report = {}
    for kind, by_side in runs.items():
        one, two = (wrk.summarise(by_side[s], keys=("rps", "p50_ms", "p99_ms")) for s in ("one", "two"))
        report[kind] = {
            "one_process": one,
            "two_processes": two,
            "rps_ratio_two_over_one": round(two["rps"]["median"] / one["rps"]["median"], 3),
            "p99_ratio_two_over_one": round(two["p99_ms"]["median"] / one["p99_ms"]["median"], 3),
        }
    return {"kinds": report, "cores": {**cpu, "note": _cores_note(cpu)}, "load_average_1_5_15": loads}


def _cores_note(cpu: dict) -> str:
    if cpu["total"] <= 2:
        return (f"{cpu['total']} cores: wrk (and Redis) on CPU {cpu['load']}, both web processes share CPU "
                f"{cpu['web']}; two processes cannot use more CPU than one here, so the ratio measures "
                "the overhead of a second process, not scaling")  # fmt: skip
    return f"web processes on CPUs {cpu['web']}, wrk on CPU {cpu['load']}"


def run(rounds: int, seconds: int, warmup: int, only: tuple[str, ...] | None = None) -> dict:
    wrk.require()
    with portal_env() as env:
        auth = seed()
        import django.db

        django.db.connections.close_all()
        result = measure(env, auth, rounds=rounds, seconds=seconds, warmup=warmup, only=only)
        result["database"] = django.db.connection.vendor
    result["method"] = (f"two uvicorn processes (httptools, uvloop) over one database and Redis; wrk -t2 "
                        f"-c{CONNECTIONS}; per round and kind a {warmup} s warm-up and a {seconds} s window, "
                        f"1 process and 2 processes alternating first; {rounds} round(s), median with min-max")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s windows (1 s warm-up): a smoke run")
    parser.add_argument("--kinds", nargs="+", choices=(*MIX, "mixed"), help="measure only these kinds (default: all)")
    args = parser.parse_args(argv)
    rounds, seconds, warmup = (1, 3, 1) if args.quick else (args.rounds, args.seconds, args.warmup)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = run(rounds, seconds, warmup, tuple(args.kinds) if args.kinds else None)
    print(json.dumps({"benchmark": "stateless web: one vs two web processes, mixed workload", "date": started,
                      "quick": args.quick, **result}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
