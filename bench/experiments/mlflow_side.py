"""The MLflow peer's half of bench/experiments_bench.py (runs in bench/.venvs/mlflow, never the
portal's venv). Same workloads as ../shared/anchors/tracking: log_batch ingest with 2 threads and
1,000-point batches, search_runs over 10,000 runs (first 50 by a metric, with and without a
filter), get_metric_history of a 100,000-point series and the sampled 1,000-point interval read.
Prints one JSON object on the last line.

Usage: bench/.venvs/mlflow/bin/python bench/experiments/mlflow_side.py URI DURATION RUNS SERIES_POINTS CALLS
"""

import json
import math
import random
import statistics
import sys
import threading
import time

import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

URI, DURATION, N_RUNS, N_SERIES, CALLS = (
    sys.argv[1],
    float(sys.argv[2]),
    int(sys.argv[3]),
    int(sys.argv[4]),
    int(sys.argv[5]),
)
client = MlflowClient(URI)


def experiment_id(name):
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def ingest(threads=2):
    exp_id = experiment_id("ingest")
    lat, pts = [[] for _ in range(threads)], [0] * threads
    barrier = threading.Barrier(threads + 1)

    def worker(i):
        c = MlflowClient(URI)
        run_id = c.create_run(exp_id).info.run_id
        barrier.wait()
        step, end = 0, time.perf_counter() + DURATION
        while time.perf_counter() < end:
            ts = int(time.time() * 1000)
            batch = [Metric(f"k{k}", (step + s) * 0.001 + k, ts, step + s) for s in range(100) for k in range(10)]
            t0 = time.perf_counter()
            c.log_batch(run_id, metrics=batch)
            lat[i].append(time.perf_counter() - t0)
            pts[i] += len(batch)
            step += 100
        c.set_terminated(run_id)

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ths:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ths:
        t.join()
    elapsed = time.perf_counter() - t0
    all_lat = [x for batch in lat for x in batch]
    return {
        "points_per_s": round(sum(pts) / elapsed),
        "batches": len(all_lat),
        "p50_ms": round(pct(all_lat, 0.5), 1),
        "p99_ms": round(pct(all_lat, 0.99), 1),
    }


def populate(threads=4):
    exp_id = experiment_id("runs10k")
    have = len(client.search_runs([exp_id], max_results=50000))
    idx, lock = iter(range(have, N_RUNS)), threading.Lock()

    def worker():
        c = MlflowClient(URI)
        while True:
            with lock:
                i = next(idx, None)
            if i is None:
                return
            rng, ts = random.Random(i), int(time.time() * 1000)
            rid = c.create_run(exp_id, run_name=f"r{i:05d}").info.run_id
            c.log_batch(
                rid,
                metrics=[Metric(f"m{k}", rng.random(), ts, 0) for k in range(5)],
                params=[Param("p0", str(i % 10))] + [Param(f"p{k}", f"v{rng.randrange(100)}") for k in range(1, 5)],
            )
            c.update_run(rid, status="FINISHED")

    t0 = time.perf_counter()
    ths = [threading.Thread(target=worker) for _ in range(threads)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    return exp_id, have, time.perf_counter() - t0


def search(exp_id):
    out = {}
    for label, flt in [("order_by", ""), ("filter_order_by", "metrics.m0 > 0.5 and params.p0 = '1'")]:

        def call(flt=flt):
            return client.search_runs([exp_id], filter_string=flt, max_results=50, order_by=["metrics.m0 DESC"])

        for _ in range(2):
            call()
        ts = []
        for _ in range(CALLS):
            t0 = time.perf_counter()
            r = call()
            ts.append((time.perf_counter() - t0) * 1000)
        out[label] = {"p50_ms": round(statistics.median(ts), 1), "min_ms": round(min(ts), 1), "returned": len(r)}
    return out


def series():
    exp_id = experiment_id("series")
    runs = client.search_runs([exp_id], filter_string=f"tags.bench = 'series{N_SERIES}'")
    if runs:
        run_id = runs[0].info.run_id
    else:
        run_id = client.create_run(exp_id, tags={"bench": f"series{N_SERIES}"}).info.run_id
        ts = int(time.time() * 1000)
        for b in range(0, N_SERIES, 1000):
            client.log_batch(
                run_id,
                metrics=[Metric("loss", 1.0 / math.sqrt(1 + s), ts + s, s) for s in range(b, min(N_SERIES, b + 1000))],
            )
        client.set_terminated(run_id)

    def timeit(f, n):
        f()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = f()
            ts.append((time.perf_counter() - t0) * 1000)
        return r, statistics.median(ts)

    h, full_ms = timeit(lambda: client.get_metric_history(run_id, "loss"), 3)
    s = requests.Session()
    url = f"{URI}/api/2.0/mlflow/metrics/get-history-bulk-interval"
    r, sampled_ms = timeit(lambda: s.get(url, params={"run_ids": run_id, "metric_key": "loss", "max_results": 1000}), 5)
    return {
        "full_points": len(h),
        "full_ms": round(full_ms),
        "sampled_points": len(r.json()["metrics"]),
        "sampled_ms": round(sampled_ms, 1),
    }


result = {"ingest": ingest()}
# Not timed, as on the portal's side: this machine's PostgreSQL has autovacuum off, so refresh
# the planner statistics that autovacuum would after the ingest added rows.
import psycopg2  # noqa: E402  (installed with the peer: bench/experiments/setup_mlflow.sh)

with psycopg2.connect("postgresql://mlflow:mlflow@127.0.0.1:5432/mlflowbench") as _conn, _conn.cursor() as _cur:
    for _table in ("metrics", "latest_metrics"):
        _cur.execute(f"ANALYZE {_table}")
exp_id, had, took = populate()
result["populate"] = {"runs_before": had, "seconds": round(took, 1)}
result["runs_table"] = search(exp_id)
result["series"] = series()
print(json.dumps(result))
