"""Evidently's side of bench/drift.py, run with bench/.venvs/evidently's python. Prints one JSON object.

    bench/.venvs/evidently/bin/python bench/drift_evidently.py FOLDER

DataDriftPreset with K-S forced (method="ks") on reference.npy / current.npy from FOLDER, timed as in
../shared/anchors/drift_evidently.py: Report.run plus snapshot.dict(), DataFrames built before the clock starts.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def main() -> None:
    folder = Path(sys.argv[1])
    reference, current = np.load(folder / "reference.npy"), np.load(folder / "current.npy")
    names = [f"c{j}" for j in range(reference.shape[1])]
    ref = pd.DataFrame(reference, columns=names)
    cur = pd.DataFrame(current, columns=names)
    del reference, current
    loaded_mb, loaded_rss = peak_mb(), rss_mb()
    reset_peak()

    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    t0 = time.perf_counter()
    definition = DataDefinition(numerical_columns=names)
    snapshot = Report([DataDriftPreset(method="ks")]).run(
        Dataset.from_pandas(cur, data_definition=definition), Dataset.from_pandas(ref, data_definition=definition)
    )
    result = snapshot.dict()
    elapsed = time.perf_counter() - t0
    # Per-column metrics are named like "ValueDrift(column=c0,method=K-S p_value,threshold=0.05)" with the
    # p-value as their value: a column drifted when the value is under its threshold.
    p_values, flagged = {}, []
    for metric in result["metrics"]:
        name = str(metric.get("metric_name") or metric.get("metric_id") or "")
        found = re.match(r"ValueDrift\(column=([^,]+),.*threshold=([0-9.eE+-]+)\)", name)
        if found:
            column, threshold = found.group(1), float(found.group(2))
            value = float(metric["value"])
            p_values[column] = value
            if value < threshold:
                flagged.append(column)
    print(
        json.dumps(
            {
                "version": evidently.__version__,
                "time_s": elapsed,
                "flagged": sorted(flagged),
                "p_values": p_values,
                "metric_names": [str(m.get("metric_name"))[:120] for m in result["metrics"][:3]],
                "peak_rss_mb": {"after_loading": loaded_mb, "end": peak_mb()},
                "rss_after_loading_mb": loaded_rss,
                "check_peak_mb": hwm_mb(),
            }
        )
    )


if __name__ == "__main__":
    main()
