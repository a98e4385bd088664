"""Per-feature statistics (numeric: moments, quantiles, histogram; others: top categories).

PII features get counts only (rows, nulls, distinct values): no value of theirs (top values, min,
max, quantiles, histogram edges) is computed, stored or shown, whoever looks; `view_pii` is for
reading rows (audited), not for distributions. `public()` applies the same rule when reading
statistics stored before a feature was marked PII.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
BINS = 20
TOP = 10
SAMPLE = 1_000_000
COUNT_KEYS = ("count", "nulls", "distinct")  # all a PII feature's statistics may hold


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
        if f.get("pii"):
            base.update(distinct=pc.count_distinct(col, mode="only_valid").as_py(), pii=True)
        elif f["dtype"] in ("int64", "float64"):
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


def public(stats: dict, pii: set[str] | frozenset[str]) -> dict:
    """The statistics anyone who may view the feature view may see: those of the `pii` features
    reduced to their counts (marked ``"pii": true``), the others as computed."""
    return {
        name: ({k: v for k, v in s.items() if k in COUNT_KEYS} | {"pii": True}) if name in pii else s
        for name, s in stats.items()
    }
