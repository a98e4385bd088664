"""Online feature reads: in process vs Feast's SQLite online store, and over HTTP (fast path).

1. In process, 1 entity x 10 float features, 10,000 entities: `services.online_read` (token-less,
   but with the object permission check, validation and PII rules) vs Feast's
   `get_online_features(...).to_dict()` on the same shape of data, in the same run
   (Feast in bench/.venvs/feast, created on first use). --repeats x 1,000 reads after 200 warm-up
   reads each side, median p50/p99 with the spread. (A function call timed in process, not HTTP.)
2. Over HTTP on loopback with a token: uvicorn (httptools, uvloop, one process) serving
   bench/features_asgi.py (= portal.asgi's application) pinned to CPU 0; the load is `wrk` pinned
   to CPU 1 with a Lua script that sends at a fixed rate (--rate requests/s over --connections
   keep-alive connections, one global schedule; a connection that comes back late takes the next
   free slot at once, so a stall cannot lower the offered rate), cycling through 1,000 request
   bodies for random entities. A 5 s warm-up window at the same rate, then --repeats windows of
   --seconds each; wrk's latency is measured from each request's send to its answer.
3. 100 entities x 10 features in one call over HTTP: wrk on one connection, back to back, same
   warm-up and windows.

    .venv/bin/python bench/features_online.py                          # full: 3 x 30 s windows
    .venv/bin/python bench/features_online.py --seconds 3 --repeats 1 --skip-feast   # smoke
    .venv/bin/python bench/features_online.py --diagnose   # + GC pauses and slow requests in the server
    .venv/bin/python bench/features_online.py --skip-in-process --skip-hundred --seconds 75 --repeats 1 --diagnose
                                       # one window long enough to see the 60 s cache expiries

Each fixed-rate window also records how long the server's event-loop thread and Redis were
runnable but waiting for their core (kernel schedstat) and how often wrk was preempted: a tail
that matches those is the machine's, not the code's.

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import wrk  # noqa: E402
from bench.common import ensure_venv, portal_env, server  # noqa: E402

N_ENTITIES = 10_000
FEATS = [f"f{k}" for k in range(10)]
WARMUP_S = 5
UVICORN = ["-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning",
           "--http", "httptools", "--loop", "uvloop"]  # fmt: skip
GOALS = {"http_p99_ms_at_500rps": 2.0, "hundred_entities_p99_ms": 10.0, "in_process_p99": "<= Feast p99"}

FEAST = r"""
import json, os, random, statistics, sys, time
import numpy as np, pandas as pd
from datetime import datetime, timedelta, timezone
os.chdir(sys.argv[1]); os.makedirs("feast_repo/data", exist_ok=True)
data = os.path.abspath("feast_repo/data")
open("feast_repo/feature_store.yaml", "w").write(
    f"project: bench\nregistry: {data}/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n"
    f"  path: {data}/online_store.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n")
from feast import FeatureStore, Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32
import feast
rng = np.random.default_rng(3); N = int(sys.argv[2]); REPEATS = int(sys.argv[3])
now = datetime.now(timezone.utc).replace(microsecond=0)
df = pd.DataFrame({"eid": np.arange(N, dtype=np.int64), "event_timestamp": pd.to_datetime([now - timedelta(minutes=5)] * N, utc=True)})
for k in range(10): df[f"f{k}"] = rng.standard_normal(N).astype(np.float32)
df.to_parquet("feast_repo/data/feats.parquet", index=False)
ent = Entity(name="e", join_keys=["eid"], value_type=ValueType.INT64)
src = FileSource(path=f"{data}/feats.parquet", timestamp_field="event_timestamp")
fv = FeatureView(name="fv", entities=[ent], ttl=timedelta(days=1), schema=[Field(name=f"f{k}", dtype=Float32) for k in range(10)], source=src, online=True)
store = FeatureStore(repo_path="feast_repo"); store.apply([ent, fv])
store.materialize(start_date=now - timedelta(hours=1), end_date=now + timedelta(minutes=1))
feats = [f"fv:f{k}" for k in range(10)]
random.seed(0)
for _ in range(200): store.get_online_features(features=feats, entity_rows=[{"eid": random.randrange(N)}]).to_dict()
reps = []
for rep in range(REPEATS):
    lat = []
    for _ in range(1000):
        e = random.randrange(N); t = time.perf_counter()
        store.get_online_features(features=feats, entity_rows=[{"eid": e}]).to_dict()
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort(); reps.append({"p50_ms": round(lat[499], 4), "p99_ms": round(lat[989], 4)})
print(json.dumps({"version": feast.__version__, "runs": reps}))
"""

# The requests and the summary of a fixed-rate window (wrk's LuaJIT). The pacing is bench/wrk.py's
# `PACED`, put in front when a rate is given: one global schedule of RATE sends per second over all
# connections (whole-millisecond timers, so a send may be ~1 ms off its slot; the offered rate is
# exact over the window). `behind` counts sends over 1 ms late (the generator falling behind, e.g.
# when every connection waited on a stalled server).
FIXED_RATE = r"""
local BODIES = __BODIES__
local requests_ = {}
local i = 0
local threads = {}

setup = function(thread) table.insert(threads, thread) end

init = function(args)
  for k, body in ipairs(BODIES) do requests_[k] = wrk.format("POST", nil, nil, body) end
end

request = function()
  i = i % #requests_ + 1
  return requests_[i]
end

done = function(summary, latency, requests)
  local late = 0
  for _, t in ipairs(threads) do late = late + (t:get("behind") or 0) end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.timeout + summary.errors.status
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "behind": %d}\n',
    summary.requests, summary.duration, errors, summary.errors.status, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, late))
end
"""


def fixed_rate(url: str, headers: dict, bodies: list[str], *, rate: float, seconds: int, connections: int) -> dict:
    """One wrk window on the load core (rate 0: back to back). Latencies in milliseconds."""
    script = FIXED_RATE.replace("__BODIES__", "{" + ",".join(json.dumps(b) for b in bodies) + "}")
    if rate:  # wrk's pacing (bench/wrk.py) before this script's requests and summary
        script = wrk.PACED.replace("__RATE__", repr(float(rate))) + script
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="features-online-", delete=False) as lua:
        lua.write(script)
    try:
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout=5s", "-s", lua.name]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        switches = resource.getrusage(resource.RUSAGE_CHILDREN).ru_nivcsw
        out = subprocess.run(wrk.pinned([*cmd, url], wrk.LOAD_CPU), capture_output=True, text=True, check=True,  # noqa: S603  fixed wrk argv, no shell
                             timeout=seconds + 60).stdout  # fmt: skip
        switches = resource.getrusage(resource.RUSAGE_CHILDREN).ru_nivcsw - switches
    finally:
        Path(lua.name).unlink(missing_ok=True)
    raw = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    elapsed = raw["duration_us"] / 1e6
    if raw["errors"]:
        raise RuntimeError(f"wrk: {raw['errors']} errors ({raw['non_2xx']} non-2xx) on {url}")
    return {
        "target_rps": rate or None,
        "rps": round(raw["requests"] / elapsed, 1),
        **{f"{p}_ms": round(raw[f"{p}_us"] / 1000, 3) for p in ("p50", "p90", "p99", "p999", "max")},
        "requests": raw["requests"],
        "behind_schedule_over_1ms": raw["behind"],
        "wrk_preempted": switches,  # involuntary context switches: other work took the load core
        "errors": raw["errors"],
        "seconds": round(elapsed, 1),
        "connections": connections,
    }


def spread(runs: list[dict], keys: tuple) -> dict:
    return {
        k: {
            "median": round(statistics.median(r[k] for r in runs), 3),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }  # fmt: skip
        for k in keys
    }


def pin_redis(env: dict) -> int | None:
    """The embedded Redis's pid, on the load core (bench.common.portal_env already puts it there)."""
    import redis

    pid = int(redis.Redis(port=int(env["PORTAL_REDIS_PORT"])).info("server")["process_id"])
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(pid, {int(wrk.LOAD_CPU)})
    return pid


def run_queue_ms(pid: int | None) -> float:
    """Milliseconds the process's main thread has waited runnable for a CPU (kernel schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def setup_portal():
    import numpy as np
    import pyarrow as pa
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from apps.accounts import roles
    from apps.accounts.services import token_create
    from apps.core.audit import acting_as
    from apps.features import services

    user = get_user_model().objects.create_user("bench", password="x" * 20)
    user.groups.add(Group.objects.get(name=roles.DATA_STEWARDS))
    with acting_as(user):
        entity = services.entity_create(actor=user, name="e", join_keys=[{"name": "eid", "dtype": "int64"}])
        view = services.feature_view_create(actor=user, name="fv", entity=entity, ttl_seconds=86400,
                                            features=[{"name": f, "dtype": "float64"} for f in FEATS])  # fmt: skip
        rng = np.random.default_rng(3)
        now = timezone.now().replace(microsecond=0)
        cols = {"eid": np.arange(N_ENTITIES, dtype=np.int64),
                "event_timestamp": pa.array([now - timedelta(minutes=5)] * N_ENTITIES)}  # fmt: skip
        for f in FEATS:
            cols[f] = rng.standard_normal(N_ENTITIES).astype(np.float32).astype(np.float64)
        services.feature_view_ingest(view=view, actor=user, data=pa.table(cols))
        job = services.feature_view_materialize(view=view, actor=user, start=now - timedelta(hours=1), end=now)
        job = services.materialization_run(job_id=job.pk)
        assert job.keys_written == N_ENTITIES, job.error  # noqa: S101  benchmark sanity check; benches never run under -O
    _, key = token_create(user=user, name="bench", scopes=["features"], expires_days=1)
    return user, key


def in_process(user, repeats: int) -> dict:
    from apps.core.heap import settle
    from apps.features import services

    feats = [f"fv:{f}" for f in FEATS]
    random.seed(0)
    settle(import_urls=False)  # as in every portal process (web: portal/asgi.py, workers: on fork)
    for _ in range(200):
        services.online_read(actor=user, features=feats, entities={"eid": [random.randrange(N_ENTITIES)]})  # noqa: S311  warm-up entity ids, not a secret
    runs = []
    for _ in range(repeats):
        lat = []
        for _ in range(1000):
            e = random.randrange(N_ENTITIES)  # noqa: S311  random entity ids to read, not a secret
            t = time.perf_counter()
            body = services.online_read(actor=user, features=feats, entities={"eid": [e]})
            lat.append((time.perf_counter() - t) * 1e3)
        assert body["results"]["fv:f0"]["statuses"] == ["present"]  # noqa: S101  benchmark sanity check; benches never run under -O
        lat.sort()
        runs.append({"p50_ms": round(lat[499], 4), "p99_ms": round(lat[989], 4)})
    return {**spread(runs, ("p50_ms", "p99_ms")), "runs": runs}


def over_http(env: dict, key: str, args) -> dict:
    from apps.core.embedded_redis import free_port

    port = free_port()
    if args.diagnose:
        env = {**env, "FEATURES_BENCH_DIAG": "1"}
    cmd = wrk.pinned([sys.executable, *UVICORN, "--port", str(port), "bench.features_asgi:app"])
    rng = random.Random(1)  # noqa: S311  seeded entity ids to read, not a secret
    feats = [f"fv:{f}" for f in FEATS]
    one = [json.dumps({"features": feats, "entities": {"eid": [rng.randrange(N_ENTITIES)]}}) for _ in range(1000)]
    hundred = [json.dumps({"features": feats, "entities": {"eid": rng.sample(range(N_ENTITIES), 100)}})
               for _ in range(100)]  # fmt: skip
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/api/v1/features/online"
    out: dict = {"one_entity_fixed_rate": [], "hundred_entities_back_to_back": []}
    loads = [wrk.load_average()]
    redis_pid = pin_redis(env)
    with server(cmd, env, port, path="/healthz") as proc:
        served_by = proc.pid  # taskset execs the server: same process
        fixed_rate(url, headers, one, rate=args.rate, seconds=WARMUP_S, connections=args.connections)
        for _ in range(args.repeats):
            # Time each process was ready to run but waited for its core: a tail that matches these
            # is the machine's (other work on the cores), not the code's.
            queued = run_queue_ms(served_by), run_queue_ms(redis_pid)
            result = fixed_rate(url, headers, one, rate=args.rate, seconds=args.seconds, connections=args.connections)
            result["server_runnable_wait_ms"] = round(run_queue_ms(served_by) - queued[0], 1)
            result["redis_runnable_wait_ms"] = round(run_queue_ms(redis_pid) - queued[1], 1)
            out["one_entity_fixed_rate"].append(result)
            loads.append(wrk.load_average())
        if args.diagnose:  # the fixed-rate windows only
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/diagnostics", timeout=10) as answer:
                out["server_diagnostics"] = json.loads(answer.read())
        if not args.skip_hundred:
            fixed_rate(url, headers, hundred, rate=0, seconds=WARMUP_S, connections=1)
        for _ in range(0 if args.skip_hundred else args.repeats):
            out["hundred_entities_back_to_back"].append(
                fixed_rate(url, headers, hundred, rate=0, seconds=args.seconds, connections=1)
            )
        loads.append(wrk.load_average())
    keys = ("rps", "p50_ms", "p99_ms", "max_ms")
    one_runs, hundred_runs = out["one_entity_fixed_rate"], out["hundred_entities_back_to_back"]
    return {
        "one_entity_fixed_rate": {**spread(one_runs, keys), "runs": one_runs},
        "hundred_entities_back_to_back": {**spread(hundred_runs, keys), "runs": hundred_runs} if hundred_runs else None,
        "goals": {
            "one_entity_p99_under_2ms_in_runs": f"{sum(r['p99_ms'] < 2.0 for r in one_runs)} of {len(one_runs)}",
            "hundred_p99_under_10ms_in_runs": f"{sum(r['p99_ms'] < 10.0 for r in hundred_runs)} of {len(hundred_runs)}",
        },
        "load_average_1_5_15": loads,
        **({"server_diagnostics": out["server_diagnostics"]} if "server_diagnostics" in out else {}),
    }


def feast(n: int, repeats: int) -> dict:
    python = ensure_venv("feast", ["feast", "pandas<3"])
    with tempfile.TemporaryDirectory(prefix="feast-bench-") as tmp:
        out = subprocess.run([str(python), "-c", FEAST, tmp, str(n), str(repeats)], check=True, capture_output=True,  # noqa: S603  fixed argv (bench venv's python, bench script), no shell
                             text=True)  # fmt: skip
    raw = json.loads(out.stdout.strip().splitlines()[-1])
    return {"version": raw["version"], **spread(raw["runs"], ("p50_ms", "p99_ms")), "runs": raw["runs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500, help="requests/s offered in the fixed-rate windows")
    parser.add_argument("--connections", type=int, default=4, help="wrk keep-alive connections for the fixed rate")
    parser.add_argument("--seconds", type=int, default=30, help="window length (after a 5 s warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="windows (HTTP) and 1,000-read runs (in process)")
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--skip-hundred", action="store_true", help="only the 1-entity fixed-rate windows")
    parser.add_argument("--diagnose", action="store_true", help="record GC pauses and slow requests in the server")
    args = parser.parse_args()
    wrk.require()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with portal_env() as env:
        user, key = setup_portal()
        import django.db

        django.db.connections.close_all()
        ours = None if args.skip_in_process else in_process(user, args.repeats)
        theirs = None if args.skip_feast or args.skip_in_process else feast(N_ENTITIES, args.repeats)
        http = over_http(env, key, args)
    report = {
        "benchmark": "online feature reads (1 entity x 10 float features, 10,000 entities)",
        "date": started,
        "method": (
            f"server: uvicorn (httptools, uvloop, 1 process) on CPU {wrk.SERVER_CPU} serving portal.asgi, "
            f"Redis on CPU {wrk.LOAD_CPU}; "
            f"load: wrk -t1 on CPU {wrk.LOAD_CPU}, fixed rate {args.rate:g}/s over {args.connections} "
            f"connections (Lua schedule); {WARMUP_S} s warm-up, then {args.repeats} windows of "
            f"{args.seconds} s; median with min/max"
        ),  # fmt: skip
        "in_process_portal": ours,
        "in_process_feast_sqlite": theirs,
        "p99_ratio_feast_over_portal": (
            round(theirs["p99_ms"]["median"] / ours["p99_ms"]["median"], 2) if theirs and ours else None
        ),
        "http_fast_path": http,
        "goals": GOALS,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
