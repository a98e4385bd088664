"""The load side of bench/mlflow_tracking.py: the real MLflow client (its own virtualenv, pinned to
CPU 1 by the caller) against one tracking server, for one measurement. Prints one JSON object.

    python bench/mlflow_tracking_client.py URI log_metric|log_batch|search --window S --warmup S [--experiment NAME]

- log_metric: `MlflowClient.log_metric` in a loop on one run, one HTTP request per call (what most
  training scripts do); calls/s and latency.
- log_batch: `MlflowClient.log_batch` of 1,000 points (one key, consecutive steps) on one run;
  batches/s, points/s and latency.
- search: `MlflowClient.search_runs` over the seeded experiment with a filter and an order_by (the
  anchor's query: `metrics.m0 > 0.5 and params.p0 = '1'`, `metrics.m0 DESC`, 50 rows); calls/s and latency.
Each loop runs `--warmup` seconds untimed, then `--window` seconds timed, on the same connection.
The token, when the server needs one, comes from MLFLOW_TRACKING_TOKEN as for any client.
"""

import argparse
import json
import statistics
import time

from mlflow import MlflowClient
from mlflow.entities import Metric

SEARCH_FILTER = "metrics.m0 > 0.5 and params.p0 = '1'"
SEARCH_ORDER = ["metrics.m0 DESC"]
BATCH = 1000


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def experiment_id(client, name):
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def loop(call, warmup_s, window_s):
    """Call `call(i)` back to back: `warmup_s` untimed, then `window_s` timed. Returns latencies (s)."""
    i, end = 0, time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        call(i)
        i += 1
    latencies, started = [], time.perf_counter()
    end = started + window_s
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        call(i)
        latencies.append(time.perf_counter() - t0)
        i += 1
    return latencies, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("mode", choices=("log_metric", "log_batch", "search"))
    parser.add_argument("--window", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--experiment", default="bench-tracking")
    parser.add_argument("--search-experiment", default="bench-runs10k")
    args = parser.parse_args()
    client = MlflowClient(args.uri)
    extra = {}
    if args.mode == "search":
        exp = experiment_id(client, args.search_experiment)
        first = client.search_runs([exp], filter_string=SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=50)
        extra = {"returned": len(first), "top_m0": first[0].data.metrics.get("m0") if first else None}

        def call(i):
            client.search_runs([exp], filter_string=SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=50)
    else:
        exp = experiment_id(client, args.experiment)
        run_id = client.create_run(exp, run_name=f"{args.mode}-{int(time.time())}").info.run_id
        ts = int(time.time() * 1000)
        if args.mode == "log_metric":

            def call(i):
                client.log_metric(run_id, "loss", 1.0 / (1 + i), timestamp=ts + i, step=i)
        else:

            def call(i):
                base = i * BATCH
                client.log_batch(
                    run_id, metrics=[Metric("loss", 1.0 / (1 + s), ts + s, s) for s in range(base, base + BATCH)]
                )

    latencies, elapsed = loop(call, args.warmup, args.window)
    n = len(latencies)
    out = {
        "mode": args.mode,
        "calls": n,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(n / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if n else None,
        "p95_ms": round(pct(latencies, 0.95) * 1000, 2) if n else None,
        **extra,
    }
    if args.mode == "log_batch":
        out["points_per_s"] = round(n * BATCH / elapsed, 1)
    if args.mode != "search":
        client.set_terminated(run_id)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
