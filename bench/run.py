"""Run benchmarks and print one JSON document: `python -m bench.run [--smoke] [name ...]`.

Each benchmark runs in its own process (each sets Django up against its own throwaway
environment) with its own command line below; with no names, all of them run, in this order.
`--smoke` gives every one short windows and few repeats: it checks that they work, and its
figures mean nothing. Peers (MLflow, Feast, DuckDB) live in their own virtualenvs under
bench/.venvs/, created by the benchmark that needs them. Every HTTP load comes from `wrk` pinned
to the other core (bench/wrk.py); run the full set on a quiet machine, and check the load
averages each benchmark records.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (command, smoke arguments, full arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "everyday": (["-m", "bench.everyday"], ["--rounds", "1", "--seconds", "3"], []),
    "foundation": (["-m", "bench.foundation"], ["--entries", "200", "--rounds", "3"], []),
    "catalog_list": (["-m", "bench.catalog_list"], ["--rounds", "1"], []),
    "catalog_download": (
        ["-m", "bench.catalog_download"],
        ["--size-mb", "5", "--seconds", "3", "--rounds", "1", "--warmup", "1"],
        [],
    ),
    "mlflow_tracking": (["-m", "bench.mlflow_tracking"], ["--quick"], []),
    "two_web": (["-m", "bench.two_web"], ["--quick"], []),
    "features_pit": (["bench/features_pit.py"], ["--rows", "100000", "--repeat", "3", "--warmup", "1"], []),
    "features_online": (["bench/features_online.py"], ["--seconds", "3", "--repeats", "1", "--skip-feast"], []),
    "experiments": (
        ["bench/experiments_bench.py"],
        ["--seconds", "3", "--warmup", "1", "--read-seconds", "2", "--rounds", "1", "--ws-samples", "10"],
        [],
    ),
    "training_overhead": (
        ["bench/training_overhead.py"],
        ["--repeats", "3", "--max-repeats", "3", "--configs", "small", "--launches", "2"],
        [],
    ),
    "vault_crypto": (["-m", "bench.vault_crypto"], ["10"], []),
    "serving": (["-m", "bench.serving"], ["--smoke"], []),
}


def run_one(name: str, smoke: bool) -> dict:
    command, smoke_args, full_args = BENCHMARKS[name]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *command, *(smoke_args if smoke else full_args)], cwd=ROOT,  # noqa: S603  argv from the BENCHMARKS table, no shell
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    seconds = round(time.perf_counter() - started, 1)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}", "seconds": seconds}
    out = proc.stdout
    try:
        result = json.loads(out[out.index("{") :])
    except ValueError:
        return {"error": "no JSON on stdout", "stdout": out[-2000:], "seconds": seconds}
    return {**result, "seconds": seconds} if isinstance(result, dict) else {"result": result, "seconds": seconds}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="name", help=", ".join(BENCHMARKS))
    parser.add_argument("--smoke", action="store_true", help="short windows, few repeats: a check, not a figure")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "smoke": args.smoke,
        "results": {},
    }
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        report["results"][name] = run_one(name, args.smoke)
    print(json.dumps(report, indent=2))
    return 0 if all("error" not in r for r in report["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
