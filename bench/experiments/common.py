"""Constants and process helpers shared by the portal and MLflow sides of the benchmark."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]  # the repository root
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PORTAL_DB = "portal_bench"
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/5")
PORTAL_PORT, MLFLOW_PORT = 8077, 5077
MLFLOW_VENV = ROOT / "bench/.venvs/mlflow"
TABLE_EXPERIMENT = "bench-runs10k"
SERIES_EXPERIMENT = "bench-series"
GOALS = {
    "ingest_points_per_s": ">= 20000",
    "ingest_p99_ms": "< 100",
    "runs_table_server_ms": "< 60 (each)",
    "series_full_ms": "< 1000",
    "series_1000_ms": "< 100",
    "ws_p95_ms": "< 250",
}


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1 else []


def set_cpus(cpus: set[int]) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, cpus)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def ensure_database(name: str, owner: str | None = None) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if owner and not conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", [owner]).fetchone():
            conn.execute(f"CREATE ROLE {owner} LOGIN PASSWORD '{owner}'")
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone():
            conn.execute(f"CREATE DATABASE {name}" + (f" OWNER {owner}" if owner else ""))


def portal_env() -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"{PG}/{PORTAL_DB}",
        "REDIS_URL": REDIS,
        "PORTAL_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_RATE": "100000/min",
    }


def wait_http(url: str, process: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer on {url}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


# --- portal setup (in process, straight into the database; not timed) ----------------------------
