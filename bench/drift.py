"""Drift check: the portal's engine vs per-column scipy (ks_2samp + PSI) vs Evidently 0.7 (K-S forced), same data.

Data as in ../shared/anchors/drift_evidently.py: reference and current samples of --rows rows x 20 standard
normal columns (seed 42), the first --shifted columns of the current sample moved by --shift sd. The portal's
profile is built once in this process (timed on its own); then each side runs in a fresh subprocess that loads
the data from .npy files, so its peak RSS (getrusage maxrss) is its own and the increment over the loaded data
can be reported: `peak_rss_mb` is the process's whole peak (loading included), `peak_during_check_mb` the
peak after the kernel's count was reset once the data was loaded (/proc/self/clear_refs), and
`rss_increment_mb` that minus the resident size after loading:

- ours: bench/drift_child.py ours (apps.monitoring.stats.drift_compare, 1 warm-up + --repeat timed runs);
- scipy: bench/drift_child.py scipy (exact ks_2samp + PSI on 10 reference deciles per column, one run);
- Evidently: bench/drift_evidently.py in bench/.venvs/evidently (created on first use: evidently==0.7.23,
  pandas<3), DataDriftPreset(method="ks"), one run (~1 minute on 1M rows).

Prints one JSON object: times, peak RSS, the flagged columns of each side and whether they agree, the largest
gap between our KS statistic and scipy's exact one, and the machine.

    .venv/bin/python bench/drift.py                                  # full: 1M x 20, Evidently included
    .venv/bin/python bench/drift.py --rows 100000 --no-evidently     # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from apps.monitoring.stats import profile_build  # noqa: E402
from bench.common import ensure_venv  # noqa: E402

EVIDENTLY = ["evidently==0.7.23", "pandas<3"]
GOAL_S, GOAL_MB, GOAL_SPEEDUP = 1.0, 1024, 50


def generate(folder: Path, rows: int, features: int, shifted: int, shift: float) -> dict[str, np.ndarray]:
    """reference.npy and current.npy (Fortran order: contiguous columns); returns the reference columns."""
    rng = np.random.default_rng(42)
    reference = np.empty((rows, features), order="F")
    current = np.empty((rows, features), order="F")
    for j in range(features):
        reference[:, j] = rng.standard_normal(rows)
    for j in range(features):
        current[:, j] = rng.standard_normal(rows) + (shift if j < shifted else 0.0)
    np.save(folder / "reference.npy", reference)
    np.save(folder / "current.npy", current)
    return {f"c{j}": reference[:, j] for j in range(features)}


def child(args: list[str], python: str = sys.executable) -> dict:
    out = subprocess.run([python, *args], check=True, capture_output=True, text=True, cwd=ROOT)  # noqa: S603  argv from the calling bench, no shell
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of reference and of current")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--shifted", type=int, default=5, help="the first N current columns are shifted")
    parser.add_argument("--shift", type=float, default=0.1, help="shift in standard deviations")
    parser.add_argument("--repeat", type=int, default=3, help="timed drift checks of ours (at least 3)")
    parser.add_argument("--no-evidently", action="store_true", help="skip Evidently (it takes ~1 minute)")
    args = parser.parse_args()
    if args.repeat < 3:
        parser.error("--repeat must be at least 3 (median of 3 or more)")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = [round(x, 2) for x in os.getloadavg()]
    evidently_python = None if args.no_evidently else str(ensure_venv("evidently", EVIDENTLY))
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        folder = Path(tmp)
        reference = generate(folder, args.rows, args.features, args.shifted, args.shift)
        t0 = time.perf_counter()
        profile = profile_build(reference)
        profile_s = time.perf_counter() - t0
        del reference
        text = json.dumps(profile)
        (folder / "profile.json").write_text(text)
        per_feature = max(len(json.dumps(s)) for s in profile["features"].values())
        del profile, text
        ours = child(["bench/drift_child.py", "ours", str(folder), str(args.repeat)])
        naive = child(["bench/drift_child.py", "scipy", str(folder)])
        evidently = (
            None if evidently_python is None else child(["bench/drift_evidently.py", str(folder)], evidently_python)
        )
        profile_bytes = (folder / "profile.json").stat().st_size
    planted = [f"c{j}" for j in range(args.shifted)]
    times = ours["times_s"]
    ours_mb = ours["peak_rss_mb"]
    gaps = [abs(ours["ks"][c][0] - naive["ks"][c][0]) for c in naive["ks"]]
    within = all(
        ours["ks"][c][0] - 1e-12 <= naive["ks"][c][0] <= ours["ks"][c][0] + ours["ks"][c][1] + 1e-12
        for c in naive["ks"]
    )
    flagged = {
        "planted": planted,
        "ours": ours["flagged"],
        "ours_ks_only": ours["flagged_ks"],
        "scipy": naive["flagged"],
    }
    if evidently:
        flagged["evidently"] = evidently["flagged"]
    report = {
        "benchmark": "drift check",
        "date": started,
        "load_average_1_5_15": [load_before, [round(x, 2) for x in os.getloadavg()]],
        "data": f"{args.rows:,} reference rows and {args.rows:,} current rows x {args.features} float64 columns, "
        f"first {args.shifted} current columns +{args.shift} sd, seed 42",
        "profile": {"build_s": round(profile_s, 3), "json_bytes": profile_bytes, "largest_feature_bytes": per_feature},
        "ours": {
            "median_s": round(ours["median_s"], 3),
            "min_s": round(min(times), 3),
            "max_s": round(max(times), 3),
            "runs_s": [round(t, 3) for t in times],
            "peak_rss_mb": round(ours_mb["end"], 1),
            "rss_after_loading_mb": round(ours["rss_after_loading_mb"], 1),
            "peak_after_loading_mb": round(ours_mb["after_loading"], 1),
            "peak_during_check_mb": round(ours["check_peak_mb"], 1),
            "rss_increment_mb": round(ours["check_peak_mb"] - ours["rss_after_loading_mb"], 1),
        },
        "scipy": {
            "time_s": round(naive["time_s"], 3),
            "peak_rss_mb": round(naive["peak_rss_mb"]["end"], 1),
            "rss_after_loading_mb": round(naive["rss_after_loading_mb"], 1),
            "peak_during_check_mb": round(naive["check_peak_mb"], 1),
            "rss_increment_mb": round(naive["check_peak_mb"] - naive["rss_after_loading_mb"], 1),
        },
        "ks_vs_exact": {
            "max_abs_gap": max(gaps),
            "max_reported_error": max(v[1] for v in ours["ks"].values()),
            "exact_within_reported_bound": within,
        },
        "flagged": flagged,
        "flagged_identical": len({tuple(v) for k, v in flagged.items() if k not in ("planted", "ours")}) == 1
        and flagged["ours"] == flagged["ours_ks_only"],
        "speedup_vs_scipy": round(naive["time_s"] / ours["median_s"], 1),
        "machine": machine(),
    }
    if evidently:
        report["evidently"] = {
            "version": evidently["version"],
            "time_s": round(evidently["time_s"], 2),
            "peak_rss_mb": round(evidently["peak_rss_mb"]["end"], 1),
            "rss_after_loading_mb": round(evidently["rss_after_loading_mb"], 1),
            "peak_during_check_mb": round(evidently["check_peak_mb"], 1),
            "rss_increment_mb": round(evidently["check_peak_mb"] - evidently["rss_after_loading_mb"], 1),
        }
        report["speedup_vs_evidently"] = {
            "of_median": round(evidently["time_s"] / ours["median_s"], 1),
            "worst": round(evidently["time_s"] / max(times), 1),
        }
    report["goals"] = {
        "under_1_s": ours["median_s"] < GOAL_S and max(times) < GOAL_S,
        "under_1_gb": ours_mb["end"] < GOAL_MB,
        "speedup_vs_evidently_50x": None if not evidently else evidently["time_s"] / max(times) >= GOAL_SPEEDUP,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
