"""Only the ingest part of bench/experiments_bench.py (portal side), for quick iterations.

    python bench/experiments_ingest.py [--duration 15] [--repeats 3]

Same server (uvicorn on CPU0, PostgreSQL `portal_bench`), same clients (2 threads on CPU1, 1,000-point
batches). Prints one JSON document with each repeat's points/s and batch p50/p99.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from experiments.common import PORTAL_DB, PORTAL_PORT, ROOT, ensure_database, portal_env, set_cpus, stop, wait_http  # noqa: E402
from experiments_bench import ingest, portal_setup, start_portal_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ensure_database(PORTAL_DB)
    env = portal_env()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    setup = portal_setup(10_000)
    server = start_portal_server(env)
    base = f"http://127.0.0.1:{PORTAL_PORT}"
    try:
        wait_http(f"{base}/healthz", server, "portal server")
        set_cpus({1})
        runs = [ingest(base, setup, args.duration) for _ in range(args.repeats)]
    finally:
        stop(server)
    print(
        json.dumps(
            {"load_avg": os.getloadavg(), "ingest": runs, "goal": {"points_per_s": ">= 20000", "p99_ms": "< 100"}},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
