"""The MLflow side of bench/experiments_bench.py: bulk setup and the same measurements."""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import contextmanager

import psycopg
import requests
from experiments.common import (  # noqa: E402
    MLFLOW_PORT,
    MLFLOW_VENV,
    PG,
    ROOT,
    ensure_database,
    pin,
    stop,
    wait_http,
)

URI = f"http://127.0.0.1:{MLFLOW_PORT}"


def mlflow_bulk_load(uri: str, n_runs: int) -> dict:
    """Setup, not timed: the same 10,000 runs the anchor's populate.py creates (5 params, 5 metrics,
    FINISHED), written straight into MLflow's tables; over HTTP that takes ~30 minutes on this
    loaded 2-core machine. MLflow reads them back like any other runs."""
    r = requests.get(f"{uri}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "runs10k"}, timeout=30)
    if r.status_code == 200:
        exp_id = int(r.json()["experiment"]["experiment_id"])
    else:
        created = requests.post(f"{uri}/api/2.0/mlflow/experiments/create", json={"name": "runs10k"}, timeout=30)
        created.raise_for_status()
        exp_id = int(created.json()["experiment_id"])
    t0 = time.perf_counter()
    with psycopg.connect(f"{PG}/mlflowbench") as conn:
        have = conn.execute("SELECT count(*) FROM runs WHERE experiment_id = %s", [exp_id]).fetchone()[0]
        if have < n_runs:
            now = int(time.time() * 1000)
            conn.execute(
                "CREATE TEMP TABLE src AS SELECT i, md5('bench-run-' || i) AS id FROM generate_series(%s::int, %s::int) i",
                [have, n_runs - 1],
            )
            conn.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
                "SELECT id, 'r' || lpad(i::text, 5, '0'), 'UNKNOWN', '', '', 'bench', 'FINISHED', %s, %s, '', 'active', "
                "'bench-artifacts/' || id, %s FROM src",
                [now, now, exp_id],
            )
            conn.execute(
                "INSERT INTO tags (key, value, run_uuid) SELECT 'mlflow.runName', 'r' || lpad(i::text, 5, '0'), id FROM src"
            )
            conn.execute("INSERT INTO params (key, value, run_uuid) SELECT 'p0', (i % 10)::text, id FROM src")
            conn.execute(
                "INSERT INTO params (key, value, run_uuid) SELECT 'p' || k, 'v' || floor(random() * 100)::int, id "
                "FROM src, generate_series(1, 4) k"
            )
            conn.execute(
                "CREATE TEMP TABLE m AS SELECT id, 'm' || k AS key, random() AS value FROM src, generate_series(0, 4) k"
            )
            conn.execute(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) SELECT key, value, %s, id, 0, false FROM m",
                [now],
            )
            conn.execute(
                "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) SELECT key, value, %s, 0, false, id FROM m",
                [now],
            )
        conn.commit()
    with psycopg.connect(f"{PG}/mlflowbench", autocommit=True) as conn:
        for table in ("runs", "tags", "params", "metrics", "latest_metrics"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
    return {"runs_before": have, "bulk_load_s": round(time.perf_counter() - t0, 1)}


@contextmanager
def mlflow_server():
    """MLflow's own virtualenv and database, and `mlflow server --workers 1` pinned to CPU 0."""
    setup = ROOT / "bench/experiments/setup_mlflow.sh"
    subprocess.run([str(setup)], check=True, stdout=subprocess.DEVNULL)  # noqa: S603  fixed path to the bench's setup script, no shell
    ensure_database("mlflowbench", owner="mlflow")
    artifacts = ROOT / "bench/results/mlflow-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = (ROOT / "bench/results/mlflow-server.log").open("wb")
    server = subprocess.Popen(  # noqa: S603  fixed mlflow server argv, no shell
        [*pin(0), str(MLFLOW_VENV / "bin/mlflow"), "server", "--backend-store-uri",
         "postgresql+psycopg2://mlflow:mlflow@127.0.0.1:5432/mlflowbench", "--default-artifact-root", str(artifacts),
         "--no-serve-artifacts", "--host", "127.0.0.1", "--port", str(MLFLOW_PORT), "--workers", "1"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(f"{URI}/health", server, "mlflow server", timeout=180)
        yield URI
    finally:
        stop(server)
        log.close()


def mlflow_setup(args) -> dict:
    """Not timed: the 10,000 runs (bulk SQL) and the 100,000-point series, through MLflow's client in
    its own virtualenv; returns the ids the timed reads (wrk, in experiments_bench.py) need."""
    load = mlflow_bulk_load(URI, args.runs)
    out = subprocess.run(  # noqa: S603  fixed argv (mlflow venv's python, a bench script), no shell
        [*pin(1), str(MLFLOW_VENV / "bin/python"), str(ROOT / "bench/experiments/mlflow_side.py"), URI,
         str(args.series)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {"setup": load, **json.loads(out.stdout.strip().splitlines()[-1])}
