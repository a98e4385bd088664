"""Per-feature statistics (numeric: moments, quantiles, histogram; others: top categories)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BINS = 20
TOP = 10
SAMPLE = 1_000_000
MASKED_KEYS = ("min", "max", "mean", "std", "quantiles", "histogram", "top", "distinct")


def compute(table: pa.Table, features: list[dict]) -> dict:
    if table.num_rows > SAMPLE:  # exact counts, sampled distributions
        rng = np.random.default_rng(0)
        sample = table.take(pa.array(np.sort(rng.choice(table.num_rows, SAMPLE, replace=False))))
    else:
        sample = table
    out = {}
    for f in features:
        col = table.column(f["name"]) if f["name"] in table.column_names else None
        if col is None:
            continue
        base = {"count": table.num_rows, "nulls": col.null_count}
        sample_col = sample.column(f["name"])
        if f["dtype"] in ("int64", "float64"):
            base.update(_numeric(sample_col, col))
        else:
            base.update(_categorical(sample_col))
        out[f["name"]] = base
    return out


def _numeric(sample_col, col) -> dict:
    values = pc.drop_null(sample_col).to_numpy(zero_copy_only=False).astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"min": None, "max": None, "mean": None, "std": None, "quantiles": {}, "histogram": None}
    mm = pc.min_max(col)
    lo, hi = float(mm["min"].as_py()), float(mm["max"].as_py())
    counts, edges = np.histogram(values, bins=BINS, range=(lo, hi) if hi > lo else None)
    qs = np.quantile(values, QUANTILES)
    return {
        "min": lo,
        "max": hi,
        "mean": float(pc.mean(col).as_py()),
        "std": float(pc.stddev(col, ddof=0).as_py() or 0.0),
        "quantiles": {f"p{int(q * 100)}": float(v) for q, v in zip(QUANTILES, qs, strict=True)},
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def _categorical(col) -> dict:
    counts = pc.value_counts(pc.drop_null(col))
    pairs = sorted(
        ((v.as_py(), c.as_py()) for v, c in zip(counts.field("values"), counts.field("counts"), strict=True)),
        key=lambda p: -p[1],
    )
    return {"distinct": len(pairs), "top": [[str(v), int(c)] for v, c in pairs[:TOP]]}


def masked(stats: dict, pii: set[str]) -> dict:
    """Statistics with the distribution of PII features removed (counts stay)."""
    out = {}
    for name, s in stats.items():
        if name in pii:
            out[name] = {k: v for k, v in s.items() if k not in MASKED_KEYS} | {"masked": True}
        else:
            out[name] = s
    return out
