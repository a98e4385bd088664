"""Experiments tracking benchmark: the portal and the MLflow 3.17 tracking server side by side,
both on the same PostgreSQL (../shared/anchors/tracking measured MLflow the same way).

Run from the repo root (PostgreSQL on 127.0.0.1:5432 as user postgres, Redis on 6379):

    python bench/experiments_bench.py                 # everything, MLflow last
    python bench/experiments_bench.py --skip-mlflow   # the portal only

Portal: uvicorn (uvloop, httptools, one process) serving portal.asgi on CPU0, database
`portal_bench`; clients on CPU1. MLflow: `mlflow server --workers 1` on CPU0, database
`mlflowbench`, its own virtualenv (bench/experiments/setup_mlflow.sh). Setup data persists
between runs (10,000 runs, the 100,000-point series), so only the first run pays for it.
Prints one JSON document (also written to bench/results/experiments.json).
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
import threading
import time

import requests
from experiments.common import (  # noqa: E402
    GOALS,
    PORTAL_DB,
    PORTAL_PORT,  # noqa: E402
    ROOT,
    SERIES_EXPERIMENT,
    TABLE_EXPERIMENT,
    ensure_database,
    pct,
    pin,
    portal_env,
    set_cpus,
    stop,
    wait_http,
)
from experiments.mlflow_runner import run_mlflow  # noqa: E402


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
            rng = random.Random(i)
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
        assert response.status_code == 200, (label, response.status_code, response.content[:300])
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


def ingest(base: str, setup: dict, duration: float, threads: int = 2) -> dict:
    lat: list[list[float]] = [[] for _ in range(threads)]
    pts = [0] * threads
    barrier = threading.Barrier(threads + 1)
    errors: list[str] = []

    def worker(i: int) -> None:
        s = session(setup["token"])
        run_id = new_run(s, base, setup["series_experiment"], f"ingest-{time.time():.0f}-{i}")
        url = f"{base}/api/v1/runs/{run_id}/log-batch"
        barrier.wait()
        step, end = 0, time.perf_counter() + duration
        while time.perf_counter() < end:
            ts = int(time.time() * 1000)
            body = {
                "metrics": [
                    {"key": f"k{k}", "value": (step + j) * 0.001 + k, "timestamp": ts, "step": step + j}
                    for j in range(100)
                    for k in range(10)
                ]
            }
            t0 = time.perf_counter()
            r = s.post(url, json=body)
            lat[i].append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors.append(f"{r.status_code} {r.text[:200]}")
                return
            pts[i] += 1000
            step += 100
        s.patch(f"{base}/api/v1/runs/{run_id}/", json={"status": "finished"})

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ths:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ths:
        t.join()
    elapsed = time.perf_counter() - t0
    all_lat = [x for batch in lat for x in batch]
    if errors:
        raise RuntimeError(f"log-batch failed: {errors[0]}")
    return {
        "points_per_s": round(sum(pts) / elapsed),
        "batches": len(all_lat),
        "p50_ms": round(pct(all_lat, 0.5) * 1000, 1),
        "p99_ms": round(pct(all_lat, 0.99) * 1000, 1),
    }


def runs_table_http(base: str, setup: dict, calls: int) -> dict:
    s = session(setup["token"])
    out = {}
    exp = setup["table_experiment"]
    for label, flt in [("order_by", ""), ("filter_order_by", "metrics.m0 > 0.5 and params.p0 = '1'")]:
        params = {"experiment": exp, "order_by": "-metrics.m0", "page_size": 50, "filter": flt}
        for _ in range(2):
            s.get(f"{base}/api/v1/runs/", params=params)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            r = s.get(f"{base}/api/v1/runs/", params=params)
            times.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        body = r.json()
        out[label] = {
            "p50_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1),
            "returned": len(body["results"]),
            "total": body["count"],
            "top_m0": round(body["results"][0]["metrics"]["m0"], 4),
        }
    return out


def series(base: str, setup: dict, n: int) -> dict:
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

    def timeit(params: dict, repeat: int):
        url = f"{base}/api/v1/runs/{run_id}/metrics/loss"
        s.get(url, params=params).raise_for_status()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            r = s.get(url, params=params)
            times.append((time.perf_counter() - t0) * 1000)
        return r.json(), statistics.median(times), len(r.content)

    full, full_ms, full_bytes = timeit({}, 5)
    small, small_ms, _ = timeit({"max_points": 1000}, 9)
    lttb, lttb_ms, _ = timeit({"max_points": 1000, "method": "lttb"}, 9)
    out.update(
        {
            "full_points": full["returned"],
            "full_ms": round(full_ms),
            "full_bytes": full_bytes,
            "minmax_1000_points": small["returned"],
            "minmax_1000_ms": round(small_ms, 1),
            "lttb_1000_points": lttb["returned"],
            "lttb_1000_ms": round(lttb_ms, 1),
        }
    )
    return out


def ws_latency(base: str, setup: dict, samples: int) -> dict:
    from websockets.sync.client import connect

    s = session(setup["token"])
    run_id = new_run(s, base, setup["series_experiment"], f"ws-{time.time():.0f}")
    url = f"{base}/api/v1/runs/{run_id}/log-batch"
    lat = []
    ws_url = base.replace("http://", "ws://") + f"/ws/runs/{run_id}/"
    with connect(ws_url, additional_headers={"Authorization": f"Token {setup['token']}"}) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
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
    return subprocess.Popen([*pin(0), sys.executable, *args], cwd=ROOT, env=env, start_new_session=True)


def run_portal(args) -> dict:
    ensure_database(PORTAL_DB)
    env = portal_env()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup = portal_setup(args.runs)
    server = start_portal_server(env)
    base = f"http://127.0.0.1:{PORTAL_PORT}"
    try:
        wait_http(f"{base}/healthz", server, "portal server")
        set_cpus({1})  # clients on CPU1, the server on CPU0
        result = {"setup": {"populate_s": setup["populate_s"], "runs_before": setup["runs_before"]}}
        result["ingest"] = ingest(base, setup, args.duration)
        analyze_after_ingest()
        result["runs_table_http"] = runs_table_http(base, setup, args.calls)
        result["runs_table_server"] = in_process_table(setup, args.calls)
        result["series"] = series(base, setup, args.series)
        result["websocket"] = ws_latency(base, setup, args.ws_samples)
        return result
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="ingest seconds per side")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--ws-samples", type=int, default=100)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-portal", action="store_true")
    args = parser.parse_args()
    result: dict = {"machine": {"cpus": os.cpu_count(), "load_avg_before": os.getloadavg()}, "goals": GOALS}
    if not args.skip_portal:
        result["portal"] = run_portal(args)
        print(json.dumps({"portal": result["portal"]}), file=sys.stderr, flush=True)
    if not args.skip_mlflow:
        set_cpus(set(range(os.cpu_count() or 1)))
        result["mlflow"] = run_mlflow(args)
    result["machine"]["load_avg_after"] = os.getloadavg()
    out = ROOT / "bench/results"
    out.mkdir(exist_ok=True)
    (out / "experiments.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
