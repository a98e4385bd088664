"""Seeds MLflow's side of bench/mlflow_tracking.py (runs in bench/.venvs/mlflow-server, never the
portal's venv): N runs in experiment `bench-runs10k`, each with 5 params (p0 = str(i % 10), p1..p4)
and 5 metrics (m0..m4, uniform [0, 1) seeded by i), FINISHED, the shape of the anchor's populate.py.

Written through MLflow's own store layer (`MlflowClient` with the database URI: SqlAlchemyStore,
the code the tracking server runs behind its REST API: create_run, log_batch, update_run_info), not
over HTTP, which takes ~30 minutes for 10,000 runs on this machine. Resumable: counts what is there.
Prints one JSON object on the last line.

    python bench/mlflow_tracking_seed.py postgresql+psycopg2://postgres@127.0.0.1:5432/mlflow_bench 10000 [THREADS]
"""

import json
import random
import sys
import threading
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus

URI, N = sys.argv[1], int(sys.argv[2])
THREADS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
EXPERIMENT = "bench-runs10k"

client = MlflowClient(URI)
found = client.get_experiment_by_name(EXPERIMENT)
exp_id = found.experiment_id if found else client.create_experiment(EXPERIMENT)
have = len(client.search_runs([exp_id], max_results=50000)) if found else 0
todo = iter(range(have, N))
lock = threading.Lock()
t0 = time.perf_counter()


def worker():
    c = MlflowClient(URI)
    while True:
        with lock:
            i = next(todo, None)
        if i is None:
            return
        rng = random.Random(i)  # noqa: S311  seeded synthetic bench data
        ts = int(time.time() * 1000)
        run_id = c.create_run(exp_id, run_name=f"r{i:05d}").info.run_id
        c.log_batch(
            run_id,
            metrics=[Metric(f"m{k}", rng.random(), ts, 0) for k in range(5)],
            params=[Param("p0", str(i % 10))] + [Param(f"p{k}", f"v{rng.randrange(100)}") for k in range(1, 5)],
        )
        c.update_run(run_id, status=RunStatus.to_string(RunStatus.FINISHED))


threads = [threading.Thread(target=worker) for _ in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(
    json.dumps(
        {
            "experiment_id": exp_id,
            "runs_before": have,
            "runs": max(have, N),
            "seed_s": round(time.perf_counter() - t0, 1),
        }
    )
)
