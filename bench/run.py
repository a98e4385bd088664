"""Run benchmarks and print one JSON document: `python -m bench.run [name ...]`.

Each benchmark is a module `bench/<name>.py` with `run() -> dict`; with no names, all of them
run. Peers (MLflow, Feast, DuckDB, Evidently) live in their own virtualenvs under bench/.venvs/,
created by the benchmark that needs them. Results are ratios against a peer measured in the same
run wherever the goal is one, because the machine is shared and absolute times drift.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(HERE)])
        if m.name not in ("run", "common")
        and not m.name.startswith("_")
        and hasattr(importlib.import_module(f"bench.{m.name}"), "run")
    )


def main(argv: list[str]) -> int:
    names = argv or available()
    report = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": {},
    }
    for name in names:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            result = importlib.import_module(f"bench.{name}").run()
        except Exception as exc:  # report and go on with the others
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.perf_counter() - started, 1)
        report["results"][name] = result
    print(json.dumps(report, indent=2))
    return 0 if all("error" not in r for r in report["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
