"""Reference profiles: per-column summaries compact enough to store as JSON and exact enough for KS, PSI and JS.

A numeric column keeps, besides its moments and quantiles, a fine grid: the reference's order statistics at
probabilities 0, 1/2000, ..., 1 (duplicates dropped; rounded to float32 when more than 1000 remain), with the
exact number of reference values in each cell between consecutive grid points (cell j is (g[j-1], g[j]], the last cell everything above
the last point), and how many of them sit exactly on the point ("atoms"). The reference CDF and its left limit
are therefore known exactly at every grid point, which is what `drift` needs for the KS statistic (bounded
error, see drift.py; exact when every distinct value holds at least 1/2000 of the reference), PSI on reference deciles and the
display histogram.
Grid values cost ~10.7 KB of base64; the cell counts are nearly constant and compress to a few hundred bytes.
"""

from __future__ import annotations

import numpy as np

from apps.monitoring.stats.columns import CATEGORICAL, NUMERIC, as_float, count_categories, infer_kind, pack

FORMAT = 1
GRID_STEPS = 2000  # grid probabilities i/2000: KS error <= one cell's reference mass (~0.0005 on continuous data)
TOP_CATEGORIES = 100
QUANTILES = (1, 5, 25, 50, 75, 95, 99)
DISPLAY_BINS = 20  # uniform bins between p1 and p99, plus the two tails [min, p1] and [p99, max]


def profile_build(
    columns: dict[str, np.ndarray],
    *,
    kinds: dict[str, str] | None = None,
    predictions: dict[str, np.ndarray] | None = None,
) -> dict:
    """The reference profile of `columns` (and of the model's `predictions`), JSON-serialisable.

    `kinds` forces "numeric" or "categorical" for some columns; the others are inferred from their dtype
    (float/int and all-number object arrays are numeric). Missing: NaN and +-inf (numeric), None (categorical). Shape:
    `{"format": 1, "rows": n, "features": {name: summary}, "predictions": {name: summary}}`.
    """
    kinds = kinds or {}
    rows = len(next(iter(columns.values()))) if columns else 0
    return {
        "format": FORMAT,
        "rows": rows,
        "features": {name: column_profile(values, kinds.get(name)) for name, values in columns.items()},
        "predictions": {name: column_profile(values, kinds.get(name)) for name, values in (predictions or {}).items()},
    }


def column_profile(values: np.ndarray, kind: str | None = None) -> dict:
    values = np.asarray(values)
    kind = kind or infer_kind(values)
    if kind == NUMERIC:
        return _numeric(values)
    if kind == CATEGORICAL:
        return _categorical(values)
    raise ValueError(f"unknown kind {kind!r}: use 'numeric' or 'categorical'")


def _numeric(values: np.ndarray) -> dict:
    floats, wrong, _ = as_float(values)
    ordered = finite_sorted(floats)
    n = len(ordered)
    out = {"kind": NUMERIC, "n": n, "missing": len(floats) - n, "wrong_type": wrong}
    if n == 0:
        return out | {"min": None, "max": None, "mean": None, "std": None, "quantiles": {}, "hist": None, "grid": None}
    quantiles = np.quantile(ordered, [q / 100 for q in QUANTILES])
    # Fine grid: order statistics at i/GRID_STEPS, float32 to halve the bytes; counts are taken against the
    # rounded points so the stored CDF stays exact.
    positions = np.ceil(np.arange(GRID_STEPS + 1) / GRID_STEPS * n).astype(np.int64) - 1
    points = np.unique(ordered[np.clip(positions, 0, n - 1)])
    # Few distinct points (a discrete column) stay float64 so they remain the data's own values: the KS bound
    # is then 0. Many points (a continuous column) go to float32 to halve the bytes.
    stored = points if len(points) <= GRID_STEPS // 2 else np.unique(points.astype(np.float32))
    grid = stored.astype(np.float64)
    cum = np.searchsorted(ordered, grid, side="right")  # reference values <= each grid point
    atoms = cum - np.searchsorted(ordered, grid, side="left")  # values equal to each grid point
    cells = np.diff(np.concatenate([[0], cum, [n]]))
    count_dtype = np.uint32 if n < 2**32 else np.uint64
    return out | {
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
        "mean": float(ordered.mean()),
        "std": float(ordered.std()),
        "quantiles": {f"p{q}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        "hist": _display(grid, cum, n, quantiles),
        "grid": {
            "size": len(grid),
            "values": pack(stored),
            "cells": pack(cells.astype(count_dtype), compress=True),
            "atoms": pack(atoms.astype(count_dtype), compress=True),
            "deciles": _decile_index(cum, n),
        },
    }


def finite_sorted(floats: np.ndarray) -> np.ndarray:
    """The finite values, sorted (a view of one sorted copy): NaN and +-inf are missing values."""
    ordered = np.sort(floats)  # NaN sorts last, after +inf
    return ordered[np.searchsorted(ordered, -np.inf, side="right") : np.searchsorted(ordered, np.inf, side="left")]


def _decile_index(cum: np.ndarray, n: int) -> list[int]:
    """Grid indices of the reference deciles (first point whose CDF reaches k/10), duplicates dropped."""
    idx = np.searchsorted(cum, np.arange(1, 10) / 10 * n, side="left")
    return sorted({int(i) for i in np.minimum(idx, len(cum) - 1)})


def _display(grid: np.ndarray, cum: np.ndarray, n: int, quantiles: np.ndarray) -> dict:
    """Display histogram whose edges are grid points, so a current sample's counts come from its grid counts.

    Bins are (edge[k-1], edge[k]]; the first bin also holds everything at or below edge[0] and the last
    everything above the last edge, so every value of a current sample lands in some bin.
    """
    lo, hi = float(quantiles[0]), float(quantiles[-1])
    inner = np.linspace(lo, hi, DISPLAY_BINS + 1) if hi > lo else np.array([lo])
    targets = np.concatenate([[grid[0]], inner, [grid[-1]]])
    index = np.unique(np.clip(np.searchsorted(grid, targets, side="left"), 0, len(grid) - 1))
    return {"edges": grid[index].tolist(), "counts": display_counts(cum, n, index), "edge_index": index.tolist()}


def display_counts(cum: np.ndarray, total: int, index: np.ndarray) -> list[int]:
    """Counts per display bin from the cumulative counts at the grid points (open-ended first and last bins)."""
    at = cum[index]
    if len(index) == 1:
        return [int(total)]
    counts = np.diff(at)
    counts[0] += at[0]
    counts[-1] += total - at[-1]
    return counts.tolist()


def _categorical(values: np.ndarray) -> dict:
    counter, missing = count_categories(values)
    n = sum(counter.values())
    top = counter.most_common(TOP_CATEGORIES)
    return {
        "kind": CATEGORICAL,
        "n": n,
        "missing": missing,
        "distinct": len(counter),
        "top": [[label, count] for label, count in top],
        "other": n - sum(count for _, count in top),
    }
