"""One side of bench/drift.py in a fresh process, so its peak RSS is its own. Prints one JSON object.

    python bench/drift_child.py ours  FOLDER REPEAT   # drift_compare(profile.json, current.npy), REPEAT timed runs
    python bench/drift_child.py scipy FOLDER          # per-column scipy.stats.ks_2samp + PSI on 10 reference deciles

FOLDER holds reference.npy and current.npy (rows x columns, Fortran order: every column is a contiguous view)
and, for `ours`, profile.json. The peak RSS is reported after loading the data and at the end, with the resident
size after loading, so the check's own increment over the data can be told apart.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def reset_peak() -> None:
    """Restart the kernel's peak-RSS count (VmHWM) so the check's own peak is not hidden by loading's copies."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def hwm_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def rss_mb() -> float:
    """Resident set size now (the peak can come from loading the data, which would hide the check's own)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def columns(path: Path) -> dict[str, np.ndarray]:
    data = np.load(path)
    return {f"c{j}": data[:, j] for j in range(data.shape[1])}


def ours(folder: Path, repeat: int) -> dict:
    from apps.monitoring.stats import drift_compare

    start_mb = peak_mb()
    profile = json.loads((folder / "profile.json").read_text())
    current = columns(folder / "current.npy")
    loaded_mb, loaded_rss = peak_mb(), rss_mb()
    reset_peak()
    drift_compare(profile, current)  # warm-up: imports, thread pool, page faults of the first sorts
    times, report = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        report = drift_compare(profile, current)
        times.append(time.perf_counter() - t0)
    features = report["features"]
    return {
        "times_s": times,
        "median_s": statistics.median(times),
        "status": report["status"],
        "flagged": sorted(n for n, r in features.items() if r["status"] == "drift"),
        "flagged_ks": sorted(n for n, r in features.items() if r["ks"]["p_value"] < 0.05),
        "ks": {n: [r["ks"]["statistic"], r["ks"]["max_error"], r["ks"]["p_value"]] for n, r in features.items()},
        "psi": {n: r["psi"] for n, r in features.items()},
        "peak_rss_mb": {"interpreter": start_mb, "after_loading": loaded_mb, "end": peak_mb()},
        "rss_after_loading_mb": loaded_rss,
        "check_peak_mb": hwm_mb(),
    }


def naive(folder: Path) -> dict:
    """The plain approach the issue measured (../shared/anchors/drift_naive.py): exact KS and PSI, column by column."""
    from scipy.stats import ks_2samp

    start_mb = peak_mb()
    reference, current = columns(folder / "reference.npy"), columns(folder / "current.npy")
    loaded_mb, loaded_rss = peak_mb(), rss_mb()
    reset_peak()

    def psi(r, c, bins=10):
        edges = np.quantile(r, np.linspace(0, 1, bins + 1))
        edges[0], edges[-1] = -np.inf, np.inf
        rp = np.clip(np.histogram(r, edges)[0] / len(r), 1e-4, None)
        cp = np.clip(np.histogram(c, edges)[0] / len(c), 1e-4, None)
        return float(np.sum((cp - rp) * np.log(cp / rp)))

    t0 = time.perf_counter()
    ks, psis = {}, {}
    for name in reference:
        result = ks_2samp(reference[name], current[name])
        ks[name] = [float(result.statistic), float(result.pvalue)]
        psis[name] = psi(reference[name], current[name])
    elapsed = time.perf_counter() - t0
    return {
        "time_s": elapsed,
        "flagged": sorted(n for n, (_, p) in ks.items() if p < 0.05),
        "ks": ks,
        "psi": psis,
        "peak_rss_mb": {"interpreter": start_mb, "after_loading": loaded_mb, "end": peak_mb()},
        "rss_after_loading_mb": loaded_rss,
        "check_peak_mb": hwm_mb(),
    }


if __name__ == "__main__":
    side, folder = sys.argv[1], Path(sys.argv[2])
    result = ours(folder, int(sys.argv[3])) if side == "ours" else naive(folder)
    print(json.dumps(result))
