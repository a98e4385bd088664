"""Metric ingest, the portal against the MLflow 3.17 tracking server, both driven by `wrk`.

    python bench/experiments_ingest.py                       # both sides: 3 rounds, 10 s warm-up, 60 s windows
    python bench/experiments_ingest.py --seconds 3 --warmup 2 --rounds 1     # smoke
    python bench/experiments_ingest.py --skip-mlflow         # the portal only

Load: `wrk -t1 -c2` on CPU 1 (two keep-alive connections, like two training processes), a Lua
script that builds each 1,000-point batch (10 metrics x 100 steps, steps rising per run) and
POSTs it back to back: to the portal's `POST /api/v1/runs/<id>/log-batch` with a token, and to
MLflow's `POST /api/2.0/mlflow/runs/log-batch` (what `MlflowClient.log_batch` sends). Servers:
uvicorn (uvloop, httptools, one process) serving portal.asgi and `mlflow server --workers 1`,
both pinned to CPU 0, both on the same PostgreSQL (databases `portal_bench` and `mlflowbench`).
Both servers stay up for the whole run and the rounds alternate (portal, MLflow, portal, ...) so
that drift on the shared machine hits both alike; each window logs into new runs and follows a
warm-up window on its own runs (MLflow's first batches are much slower than its steady state).
Figures: the median of the rounds with the spread, points/s and batch latency. wrk counts only
the batches finished inside a window, so a batch still in flight at its end is lost: with MLflow's
~1-2 s batches on 2 connections that is up to ~3% of a 60 s window (the default), in MLflow's
disfavour; keep windows at 60 s or longer for the ratio. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import requests  # noqa: E402
from experiments.common import (  # noqa: E402
    MLFLOW_PORT,
    PORTAL_DB,
    PORTAL_PORT,
    ROOT,
    ensure_database,
    portal_env,
    stop,
    wait_http,
)

from bench import wrk  # noqa: E402

POINTS_PER_BATCH = 1000
GOAL = {"points_per_s": ">= 20000", "batch_p99_ms": "< 100"}

# One 1,000-point batch per request, round robin over the window's runs; steps rise per run.
LOG_BATCH = r"""
local PATHS = __PATHS__
local PREFIXES = __PREFIXES__
local n, steps = 0, {}
request = function()
  n = n + 1
  local r = (n - 1) % #PATHS + 1
  local step = steps[r] or 0
  steps[r] = step + 100
  local ts = os.time() * 1000
  local parts = {}
  for j = 0, 99 do
    for k = 0, 9 do
      parts[#parts + 1] = string.format('{"key":"k%d","value":%.3f,"timestamp":%d,"step":%d}',
                                        k, (step + j) * 0.001 + k, ts, step + j)
    end
  end
  return wrk.format("POST", PATHS[r], nil, PREFIXES[r] .. table.concat(parts, ",") .. "]}")
end
"""


def _lua_list(values: list[str]) -> str:
    return "{" + ",".join(json.dumps(v) for v in values) + "}"


def log_batch_window(base: str, targets: list[tuple[str, str]], headers: dict, seconds: int) -> dict:
    """wrk on the load core for one window: `targets` are (path, JSON prefix before the points)."""
    script = LOG_BATCH.replace("__PATHS__", _lua_list([t[0] for t in targets])).replace(
        "__PREFIXES__", _lua_list([t[1] for t in targets])
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="ingest-", delete=False) as lua:
        lua.write(script + wrk._DONE)
    try:
        cmd = ["wrk", "-t1", f"-c{len(targets)}", f"-d{seconds}s", "--timeout=10s", "-s", lua.name]
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            cmd += ["-H", f"{name}: {value}"]
        out = subprocess.run(wrk.pinned([*cmd, base], wrk.LOAD_CPU), capture_output=True, text=True, check=True,  # noqa: S603  fixed wrk argv, no shell
                             timeout=seconds + 120).stdout  # fmt: skip
    finally:
        Path(lua.name).unlink(missing_ok=True)
    raw = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    if raw["errors"]:
        raise RuntimeError(f"log-batch on {base}: {raw['errors']} errors ({raw['non_2xx']} non-2xx)")
    elapsed = raw["duration_us"] / 1e6
    return {
        "points_per_s": round(raw["requests"] * POINTS_PER_BATCH / elapsed),
        "batches": raw["requests"],
        "p50_ms": round(raw["p50_us"] / 1000, 1),
        "p99_ms": round(raw["p99_us"] / 1000, 1),
        "max_ms": round(raw["max_us"] / 1000, 1),
        "seconds": round(elapsed, 1),
    }


# --- the two sides: new runs for a window, and the wrk targets that log into them ----------------
class Portal:
    name = "portal"

    def __init__(self, setup: dict):
        self.base = f"http://127.0.0.1:{PORTAL_PORT}"
        self.headers = {"Authorization": f"Token {setup['token']}"}
        self.experiment = setup["series_experiment"]
        self.session = requests.Session()
        self.session.headers.update(self.headers)
        self.open: list[int] = []

    def targets(self, n: int) -> list[tuple[str, str]]:
        self.close()
        for _ in range(n):
            r = self.session.post(f"{self.base}/api/v1/runs/", json={"experiment": self.experiment,
                                                                      "name": f"ingest-{time.time_ns()}"})  # fmt: skip
            r.raise_for_status()
            self.open.append(r.json()["id"])
        return [(f"/api/v1/runs/{run}/log-batch", '{"metrics":[') for run in self.open]

    def close(self) -> None:
        for run in self.open:
            self.session.patch(f"{self.base}/api/v1/runs/{run}/", json={"status": "finished"})
        self.open = []


class MLflow:
    name = "mlflow"

    def __init__(self):
        self.base = f"http://127.0.0.1:{MLFLOW_PORT}"
        self.headers: dict = {}
        self.session = requests.Session()
        api = f"{self.base}/api/2.0/mlflow"
        found = self.session.get(f"{api}/experiments/get-by-name", params={"experiment_name": "ingest"})
        if found.status_code == 200:
            self.experiment = found.json()["experiment"]["experiment_id"]
        else:
            created = self.session.post(f"{api}/experiments/create", json={"name": "ingest"})
            created.raise_for_status()
            self.experiment = created.json()["experiment_id"]
        self.open: list[str] = []

    def targets(self, n: int) -> list[tuple[str, str]]:
        self.close()
        for _ in range(n):
            r = self.session.post(f"{self.base}/api/2.0/mlflow/runs/create",
                                  json={"experiment_id": self.experiment, "start_time": int(time.time() * 1000)})  # fmt: skip
            r.raise_for_status()
            self.open.append(r.json()["run"]["info"]["run_id"])
        return [("/api/2.0/mlflow/runs/log-batch", f'{{"run_id":"{run}","metrics":[') for run in self.open]

    def close(self) -> None:
        for run in self.open:
            self.session.post(f"{self.base}/api/2.0/mlflow/runs/update",
                              json={"run_id": run, "status": "FINISHED", "end_time": int(time.time() * 1000)})  # fmt: skip
        self.open = []


def compare(sides: list, rounds: int, seconds: int, warmup: int, connections: int = 2) -> dict:
    """Alternating rounds: per side a warm-up window, then a measured window on new runs."""
    runs: dict[str, list] = {side.name: [] for side in sides}
    loads = [wrk.load_average()]
    for _ in range(rounds):
        for side in sides:
            if warmup:
                log_batch_window(side.base, side.targets(connections), side.headers, warmup)
            runs[side.name].append(log_batch_window(side.base, side.targets(connections), side.headers, seconds))
            side.close()
        loads.append(wrk.load_average())
    out: dict = {}
    for name, each in runs.items():
        out[name] = {
            key: {
                "median": statistics.median(r[key] for r in each),
                "min": min(r[key] for r in each),
                "max": max(r[key] for r in each),
            }  # fmt: skip
            for key in ("points_per_s", "p50_ms", "p99_ms")
        }
        out[name]["runs"] = each
    if "portal" in runs:
        each = runs["portal"]
        out["portal"]["goal"] = {**GOAL, "met_in_rounds": f"{sum(r['points_per_s'] >= 20000 and r['p99_ms'] < 100 for r in each)} of {len(each)}"}  # fmt: skip
    if len(runs) == 2:
        ratios = [p["points_per_s"] / m["points_per_s"] for p, m in zip(runs["portal"], runs["mlflow"], strict=True)]
        out["portal_over_mlflow_points_per_s"] = {
            "median": round(statistics.median(ratios), 1), "min": round(min(ratios), 1), "max": round(max(ratios), 1),
            "per_round": [round(r, 1) for r in ratios],
        }  # fmt: skip
    out["load_average_1_5_15"] = loads
    out["method"] = (
        f"wrk -t1 -c{connections} on CPU {wrk.LOAD_CPU}, 1,000-point batches back to back; servers on CPU "
        f"{wrk.SERVER_CPU}; {rounds} alternating rounds of a {warmup} s warm-up and a {seconds} s window per side"
    )
    return out


@contextmanager
def portal_server():
    """Migrated `portal_bench`, the bench user's token and experiments, uvicorn serving portal.asgi."""
    from experiments_bench import portal_setup, start_portal_server

    ensure_database(PORTAL_DB)
    env = portal_env()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup = portal_setup(0)
    server = start_portal_server(env)
    try:
        wait_http(f"http://127.0.0.1:{PORTAL_PORT}/healthz", server, "portal server")
        yield setup
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=60, help="measured window per side and round (>= 30)")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up window per side and round (discarded)")
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    wrk.require()
    from experiments.mlflow_runner import mlflow_server

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with portal_server() as setup:
        sides: list = [Portal(setup)]
        if args.skip_mlflow:
            result = compare(sides, args.rounds, args.seconds, args.warmup)
        else:
            with mlflow_server():
                sides.append(MLflow())
                result = compare(sides, args.rounds, args.seconds, args.warmup)
    print(json.dumps({"benchmark": "metric ingest (log-batch, 1,000 points a batch)", "date": started, **result},
                     indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
