"""The MLflow peer's setup for bench/experiments_bench.py (runs in bench/.venvs/mlflow, never the
portal's venv): the experiment ids and the 100,000-point `loss` series logged once with
`MlflowClient.log_batch` (kept between runs). Nothing here is timed: every timed request is sent
by `wrk` from experiments_bench.py, as on the portal's side. Prints one JSON object on the last line.

Usage: bench/.venvs/mlflow/bin/python bench/experiments/mlflow_side.py URI SERIES_POINTS
"""

import json
import math
import sys
import time

from mlflow import MlflowClient
from mlflow.entities import Metric

URI, N_SERIES = sys.argv[1], int(sys.argv[2])
client = MlflowClient(URI)


def experiment_id(name):
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name)


def series():
    exp_id = experiment_id("series")
    runs = client.search_runs([exp_id], filter_string=f"tags.bench = 'series{N_SERIES}'")
    if runs:
        return runs[0].info.run_id, None
    run_id = client.create_run(exp_id, tags={"bench": f"series{N_SERIES}"}).info.run_id
    t0, ts = time.perf_counter(), int(time.time() * 1000)
    for b in range(0, N_SERIES, 1000):
        client.log_batch(
            run_id,
            metrics=[Metric("loss", 1.0 / math.sqrt(1 + s), ts + s, s) for s in range(b, min(N_SERIES, b + 1000))],
        )
    client.set_terminated(run_id)
    return run_id, round(time.perf_counter() - t0, 1)


run_id, log_s = series()
print(json.dumps({"runs_experiment": experiment_id("runs10k"), "series_run": run_id, "series_log_s": log_s}))
