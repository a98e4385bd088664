"""Experiments tracking benchmark: the portal and the MLflow 3.17 tracking server side by side,
both on the same PostgreSQL (../shared/anchors/tracking measured MLflow the same way).

Run from the repo root (PostgreSQL on 127.0.0.1:5432 as user postgres, Redis on 6379):

    python bench/experiments_bench.py                 # everything, MLflow last
    python bench/experiments_bench.py --skip-mlflow   # the portal only

    python bench/experiments_bench.py --seconds 3 --read-seconds 2 --warmup 1 --rounds 1 --ws-samples 10  # smoke

Portal: uvicorn (uvloop, httptools, one process) serving portal.asgi on CPU0, database
`portal_bench`. MLflow: `mlflow server --workers 1` on CPU0, database `mlflowbench`, its own
virtualenv (bench/experiments/setup_mlflow.sh). Both servers stay up for the whole run. Every
timed HTTP request on either side comes from `wrk` on CPU1 (bench/wrk.py), never a Python loop:
- ingest: bench/experiments_ingest.py (1,000-point log-batch POSTs on 2 connections);
- reads (runs table over 10,000 runs, the 100,000-point series and its 1,000-point samples): one
  connection back to back, a warm-up window and then a --read-seconds window per read and side;
in --rounds alternating rounds, reported as the median with the spread. In process (not HTTP):
the runs table's server time and query count. WebSocket delivery (log-batch -> message) is a
one-client round trip with pauses, measured in Python (wrk does not speak WebSocket).
Setup data persists between runs (10,000 runs, the 100,000-point series), so only the first run
pays for it. Prints one JSON document (also written to bench/results/experiments.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from urllib.parse import urlencode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import requests  # noqa: E402
from experiments.common import (  # noqa: E402
    GOALS,
    PG,
    PORTAL_DB,
    PORTAL_PORT,
    ROOT,
    SERIES_EXPERIMENT,
    TABLE_EXPERIMENT,
    ensure_database,
    pct,
    pin,
    portal_env,
    stop,
    wait_http,
)
from experiments.mlflow_runner import mlflow_server, mlflow_setup  # noqa: E402
from experiments_ingest import MLflow, Portal, compare  # noqa: E402

from bench import wrk  # noqa: E402


def portal_setup(n_runs: int) -> dict:
    os.environ.update({k: v for k, v in portal_env().items() if k in ("DATABASE_URL", "REDIS_URL", "PORTAL_DEBUG")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from apps.accounts.models import ApiToken
    from apps.accounts.services import token_create
    from apps.core.audit import acting_as
    from apps.experiments import services
    from apps.experiments.models import Experiment, ExperimentKey, MetricPoint, Run, RunMetricSummary, RunParam
    from apps.experiments.validation import as_number

    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_user(username="bench", password=None)
        user.groups.add(Group.objects.get(name="ml-engineers"))
    ApiToken.objects.filter(user=user).delete()
    _, key = token_create(user=user, name="bench", scopes=["read", "write"], expires_days=1)
    with acting_as(user):
        table = Experiment.objects.filter(name=TABLE_EXPERIMENT).first() or services.experiment_create(
            name=TABLE_EXPERIMENT, actor=user
        )
        series = Experiment.objects.filter(name=SERIES_EXPERIMENT).first() or services.experiment_create(
            name=SERIES_EXPERIMENT, actor=user
        )
    have = Run.objects.filter(experiment=table).count()
    t0 = time.perf_counter()
    for start in range(have, n_runs, 2000):  # same shape as the MLflow populate: 5 params, 5 metrics
        idx = range(start, min(n_runs, start + 2000))
        runs = Run.objects.bulk_create(
            [Run(experiment=table, owner=user, name=f"r{i:05d}", status="finished", params={}) for i in idx]
        )
        params, summaries, points = [], [], []
        for i, run in zip(idx, runs, strict=True):
            rng = random.Random(i)  # noqa: S311  seeded synthetic bench data, not a secret
            run.params = {"p0": str(i % 10), **{f"p{k}": f"v{rng.randrange(100)}" for k in range(1, 5)}}
            params += [RunParam(run=run, key=k, value=v, value_num=as_number(v)) for k, v in run.params.items()]
            for k in range(5):
                v = rng.random()
                summaries.append(
                    RunMetricSummary(run=run, key=f"m{k}", last=v, last_step=0, last_timestamp=0, min=v, max=v, count=1)
                )
                points.append(MetricPoint(run=run, key=f"m{k}", step=0, value=v, timestamp=0))
        Run.objects.bulk_update(runs, ["params"])
        RunParam.objects.bulk_create(params)
        RunMetricSummary.objects.bulk_create(summaries)
        MetricPoint.objects.bulk_create(points)
    ExperimentKey.objects.bulk_create(
        [ExperimentKey(experiment=table, kind="metric", key=f"m{k}") for k in range(5)]
        + [ExperimentKey(experiment=table, kind="param", key=f"p{k}") for k in range(5)],
        ignore_conflicts=True,
    )
    with connection.cursor() as cursor:  # what autovacuum does after a bulk load
        for db_table in ("experiments_run", "experiments_runparam", "experiments_runmetricsummary"):
            cursor.execute(f"VACUUM (ANALYZE) {db_table}")
    return {
        "token": key,
        "user_id": user.pk,
        "table_experiment": table.pk,
        "series_experiment": series.pk,
        "populate_s": round(time.perf_counter() - t0, 1),
        "runs_before": have,
    }


def in_process_table(setup: dict, calls: int) -> dict:
    """Server time and query count of the runs-table API and page, measured inside Django."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = get_user_model().objects.get(pk=setup["user_id"])
    client = Client(HTTP_AUTHORIZATION=f"Token {setup['token']}")
    browser = Client()
    browser.force_login(user)
    exp = setup["table_experiment"]
    flt = "metrics.m0 > 0.5 and params.p0 = '1'"
    cases = {
        "api_order_by": (client, f"/api/v1/runs/?experiment={exp}&order_by=-metrics.m0&page_size=50", {}),
        "api_filter_order_by": (
            client,
            f"/api/v1/runs/?experiment={exp}&order_by=-metrics.m0&page_size=50",
            {"filter": flt},
        ),
        "page_order_by": (browser, f"/experiments/{exp}/?sort=-metrics.m0", {}),
        "page_filter_order_by": (browser, f"/experiments/{exp}/?sort=-metrics.m0", {"filter": flt}),
    }
    out = {}
    for label, (c, url, extra) in cases.items():
        for _ in range(2):
            c.get(url, extra)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            response = c.get(url, extra)
            times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (label, response.status_code, response.content[:300])  # noqa: S101  benchmark sanity check; benches never run under -O
        with CaptureQueriesContext(connection) as ctx:
            c.get(url, extra)
        out[label] = {
            "p50_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1),
            "queries": len(ctx.captured_queries),
        }
        if label.startswith("api"):
            out[label]["returned"] = len(response.json()["results"])
            out[label]["matching"] = response.json()["count"]
    return out


# --- portal measurements over HTTP -----------------------------------------------------------------
def session(token: str) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Token {token}"
    return s


def new_run(s: requests.Session, base: str, experiment: int, name: str) -> int:
    r = s.post(f"{base}/api/v1/runs/", json={"experiment": experiment, "name": name})
    r.raise_for_status()
    return r.json()["id"]


def series_setup(base: str, setup: dict, n: int) -> dict:
    """Not timed: the n-point `loss` series, logged once and kept between runs."""
    s = session(setup["token"])
    name = f"series-{n}"
    found = s.get(
        f"{base}/api/v1/runs/", params={"experiment": setup["series_experiment"], "filter": f"name = '{name}'"}
    ).json()
    out: dict = {}
    if found["results"]:
        run_id = found["results"][0]["id"]
    else:
        run_id = new_run(s, base, setup["series_experiment"], name)
        t0, ts = time.perf_counter(), int(time.time() * 1000)
        for b in range(0, n, 1000):
            body = {
                "metrics": [
                    {"key": "loss", "value": 1.0 / math.sqrt(1 + i), "timestamp": ts + i, "step": i}
                    for i in range(b, min(n, b + 1000))
                ]
            }
            s.post(f"{base}/api/v1/runs/{run_id}/log-batch", json=body).raise_for_status()
        out["log_s"] = round(time.perf_counter() - t0, 1)
        s.patch(f"{base}/api/v1/runs/{run_id}/", json={"status": "finished"})
        from django.db import connection  # setup, not timed: what autovacuum does a moment later

        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) experiments_metricpoint")

    return {**out, "run": run_id}


def ws_latency(base: str, setup: dict, samples: int) -> dict:
    from websockets.sync.client import connect

    s = session(setup["token"])
    run_id = new_run(s, base, setup["series_experiment"], f"ws-{time.time():.0f}")
    url = f"{base}/api/v1/runs/{run_id}/log-batch"
    lat = []
    ws_url = base.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
    with connect(ws_url, additional_headers={"Authorization": f"Token {setup['token']}"}) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"  # noqa: S101  benchmark sanity check; benches never run under -O
        for step in range(samples):
            t0 = time.perf_counter()
            s.post(url, json={"metrics": [{"key": "loss", "value": 1 / (1 + step), "step": step}]}).raise_for_status()
            while True:
                message = json.loads(ws.recv(timeout=5))
                if message.get("type") == "metric" and message["step"] == step:
                    break
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.12)  # one point per coalescing window: measures delivery, not the throttle
    s.patch(f"{base}/api/v1/runs/{run_id}/", json={"status": "finished"})
    return {
        "samples": len(lat),
        "p50_ms": round(pct(lat, 0.5), 1),
        "p95_ms": round(pct(lat, 0.95), 1),
        "max_ms": round(max(lat), 1),
        "note": "HTTP log-batch sent -> WebSocket message received, one client",
    }


def analyze_after_ingest() -> None:
    """Not timed. This machine's PostgreSQL runs with autovacuum off; a deployment's autovacuum
    would re-analyze the points table after ingest runs add millions of rows. Stale statistics
    made later reads pick parallel bitmap scans."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE experiments_metricpoint")
        cursor.execute("ANALYZE experiments_runmetricsummary")


def start_portal_server(env: dict) -> subprocess.Popen:
    """uvicorn (uvloop, httptools, one process) serving portal.asgi, pinned to CPU0."""
    args = ["-m", "uvicorn", "portal.asgi:application", "--port", str(PORTAL_PORT), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen([*pin(0), sys.executable, *args], cwd=ROOT, env=env, start_new_session=True)  # noqa: S603  fixed uvicorn argv, no shell


# --- timed reads, both sides through wrk ------------------------------------------------------------
def read_targets(base: str, setup: dict, portal_series: int, mlflow: dict | None) -> dict:
    """name -> {side: (url, method, body)}: the same reads on both sides (MLflow's REST API is what
    its client calls: runs/search, metrics/get-history, metrics/get-history-bulk-interval)."""
    flt = "metrics.m0 > 0.5 and params.p0 = '1'"
    runs = f"{base}/api/v1/runs/?experiment={setup['table_experiment']}&order_by=-metrics.m0&page_size=50"
    series = f"{base}/api/v1/runs/{portal_series}/metrics/loss"
    out = {
        "runs_order_by": {"portal": (runs, "GET", None)},
        "runs_filter_order_by": {"portal": (f"{runs}&{urlencode({'filter': flt})}", "GET", None)},
        "series_full": {"portal": (series, "GET", None)},
        "series_1000_minmax": {"portal": (f"{series}?max_points=1000", "GET", None)},
        "series_1000_lttb": {"portal": (f"{series}?max_points=1000&method=lttb", "GET", None)},
    }
    if mlflow:
        api = f"{mlflow['uri']}/api/2.0/mlflow"
        for name, f in (("runs_order_by", ""), ("runs_filter_order_by", flt)):
            body = {"experiment_ids": [str(mlflow["runs_experiment"])], "filter": f, "max_results": 50,
                    "order_by": ["metrics.m0 DESC"]}  # fmt: skip
            out[name]["mlflow"] = (f"{api}/runs/search", "POST", json.dumps(body).encode())
        run = mlflow["series_run"]
        out["series_full"]["mlflow"] = (f"{api}/metrics/get-history?run_id={run}&metric_key=loss", "GET", None)
        out["series_1000_minmax"]["mlflow"] = (
            f"{api}/metrics/get-history-bulk-interval?run_ids={run}&metric_key=loss&max_results=1000",
            "GET",
            None,
        )
    return out


def check_reads(targets: dict, headers: dict) -> dict:
    """Not timed: each read answers 200 once, and what it returns (rows or points, bytes)."""
    out = {}
    for name, sides in targets.items():
        for side, (url, method, body) in sides.items():
            h = {**(headers if side == "portal" else {}), "Content-Type": "application/json"}
            r = requests.request(method, url, data=body, headers=h, timeout=60)
            r.raise_for_status()
            data = r.json()
            rows = data.get("results") or data.get("runs") or data.get("points") or data.get("metrics") or []
            out.setdefault(name, {})[side] = {"returned": data.get("returned", len(rows)), "bytes": len(r.content)}
    return out


def timed_reads(targets: dict, headers: dict, rounds: int, seconds: int, warmup: int) -> dict:
    runs: dict = {name: {side: [] for side in sides} for name, sides in targets.items()}
    for _ in range(rounds):
        for name, sides in targets.items():
            for side, (url, method, body) in sides.items():
                h = {**(headers if side == "portal" else {}), "Content-Type": "application/json"}
                if warmup:
                    wrk.run(url, seconds=warmup, connections=1, headers=h, method=method, body=body, timeout_s=30)
                result = wrk.run(url, seconds=seconds, connections=1, headers=h, method=method, body=body, timeout_s=30)
                if result["errors"] or not result["requests"]:
                    raise RuntimeError(f"{name} on {side}: {result}")
                runs[name][side].append(result)
    out = {}
    for name, sides in runs.items():
        out[name] = {side: wrk.summarise(each, keys=("rps", "p50_ms", "p99_ms")) for side, each in sides.items()}
        if "mlflow" in sides:
            ratios = [m["p50_ms"] / p["p50_ms"] for p, m in zip(sides["portal"], sides["mlflow"], strict=True)]
            out[name]["mlflow_over_portal_p50"] = {"median": round(statistics.median(ratios), 2),
                                                   "min": round(min(ratios), 2), "max": round(max(ratios), 2)}  # fmt: skip
    return out


def mlflow_analyze() -> None:
    """Not timed, as on the portal's side (autovacuum is off on this machine's PostgreSQL)."""
    import psycopg

    with psycopg.connect(f"{PG}/mlflowbench", autocommit=True) as conn:
        for table in ("metrics", "latest_metrics"):
            conn.execute(f"ANALYZE {table}")


def run(args) -> dict:
    ensure_database(PORTAL_DB)
    env = portal_env()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup = portal_setup(args.runs)
    server = start_portal_server(env)
    base = f"http://127.0.0.1:{PORTAL_PORT}"
    headers = {"Authorization": f"Token {setup['token']}"}
    result: dict = {"setup": {"populate_s": setup["populate_s"], "runs_before": setup["runs_before"]}}
    try:
        wait_http(f"{base}/healthz", server, "portal server")
        with ExitStack() as stack:
            mlflow = None
            if not args.skip_mlflow:
                uri = stack.enter_context(mlflow_server())
                mlflow = {"uri": uri, **mlflow_setup(args)}
                result["mlflow_setup"] = mlflow
            sides = [Portal(setup)] + ([MLflow()] if mlflow else [])
            result["ingest"] = compare(sides, args.rounds, args.seconds, args.warmup)
            analyze_after_ingest()
            if mlflow:
                mlflow_analyze()
            portal_series = series_setup(base, setup, args.series)
            result["series_setup"] = portal_series
            targets = read_targets(base, setup, portal_series["run"], mlflow)
            result["reads_returned"] = check_reads(targets, headers)
            result["reads"] = timed_reads(targets, headers, args.rounds, args.read_seconds, min(args.warmup, 5))
            result["reads"]["method"] = (f"wrk -t1 -c1 on CPU {wrk.LOAD_CPU}, back to back; {args.rounds} alternating "
                                         f"rounds of a warm-up and a {args.read_seconds} s window per read and side")  # fmt: skip
        result["runs_table_server"] = in_process_table(setup, args.calls)
        try:
            result["websocket"] = ws_latency(base, setup, args.ws_samples)
        except Exception as exc:  # reported, so that the other figures still come out
            result["websocket"] = {"error": f"{type(exc).__name__}: {exc}"}
        return result
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (ingest and reads)")
    parser.add_argument("--seconds", type=int, default=60, help="ingest window per side and round (>= 30)")
    parser.add_argument("--warmup", type=int, default=10, help="ingest warm-up window (reads: at most 5 s)")
    parser.add_argument("--read-seconds", type=int, default=30, help="window per read, side and round")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=20, help="in-process runs-table calls (server time)")
    parser.add_argument("--ws-samples", type=int, default=100)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    wrk.require()
    result: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "machine": {"cpus": os.cpu_count(), "load_avg_before": wrk.load_average()}, "goals": GOALS}  # fmt: skip
    result.update(run(args))
    result["machine"]["load_avg_after"] = wrk.load_average()
    out = ROOT / "bench/results"
    out.mkdir(exist_ok=True)
    (out / "experiments.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
