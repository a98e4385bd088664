"""Shape-preserving downsampling of a metric series (numpy, no Django).

- `minmax` (default): the series is cut into equal buckets by index; each bucket keeps its
  lowest and highest point (in step order), and the first and last points are always kept. The
  global minimum and maximum are therefore always present: a spike never disappears.
- `lttb`: Largest-Triangle-Three-Buckets (Steinarsson 2013), which keeps the visual shape with
  one point per bucket; the first, last, global minimum and global maximum are added back.

NaN values (stored as NULL) are ignored when choosing extremes and left out of downsampled output.
"""

from __future__ import annotations

import numpy as np

METHODS = ("minmax", "lttb")


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int, method: str = "minmax") -> np.ndarray:
    """Indices (sorted) of the points to keep; all indices when the series already fits."""
    n = len(steps)
    if n <= max_points:
        return np.arange(n)
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    finite = ~np.isnan(values)
    if not finite.any():
        return np.array([0, n - 1])
    if method == "lttb":
        keep = _lttb(steps.astype(np.float64), values, max_points - 2, finite)
    elif method == "minmax":
        keep = _minmax(values, max_points - 2, finite)
    else:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    forced = [0, n - 1, int(np.nanargmin(values)), int(np.nanargmax(values))]
    keep = np.union1d(keep, forced)
    return keep[:max_points] if len(keep) <= max_points else _trim(keep, forced, max_points)


def _trim(keep: np.ndarray, forced: list[int], max_points: int) -> np.ndarray:
    # Rare: drop evenly spread non-forced indices until the forced ones fit.
    others = np.setdiff1d(keep, forced)
    room = max_points - len(set(forced))
    chosen = others[np.linspace(0, len(others) - 1, room).astype(int)] if room > 0 else others[:0]
    return np.union1d(chosen, forced)


def _minmax(values: np.ndarray, budget: int, finite: np.ndarray) -> np.ndarray:
    n = len(values)
    buckets = max(1, budget // 2)
    width = -(-n // buckets)  # ceil
    pad = buckets * width - n
    low = np.where(finite, values, np.inf)
    high = np.where(finite, values, -np.inf)
    if pad:
        low = np.concatenate([low, np.full(pad, np.inf)])
        high = np.concatenate([high, np.full(pad, -np.inf)])
    offsets = np.arange(buckets) * width
    mins = offsets + low.reshape(buckets, width).argmin(axis=1)
    maxs = offsets + high.reshape(buckets, width).argmax(axis=1)
    keep = np.unique(np.concatenate([mins, maxs]))
    keep = keep[keep < n]
    return keep[finite[keep]]


def _lttb(x: np.ndarray, y: np.ndarray, budget: int, finite: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(finite)
    x, y = x[idx], y[idx]
    n = len(idx)
    if n <= budget + 2:
        return idx
    edges = np.linspace(1, n - 1, budget + 1).astype(int)
    chosen = np.empty(budget + 2, dtype=np.int64)
    chosen[0], chosen[-1] = 0, n - 1
    a = 0
    for i in range(budget):
        lo, hi = edges[i], edges[i + 1]
        nlo, nhi = edges[i + 1], edges[i + 2] if i + 2 <= budget else n
        if nhi <= nlo:
            nlo, nhi = n - 1, n
        avg_x, avg_y = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        ax, ay = x[a], y[a]
        area = np.abs((ax - avg_x) * (y[lo:hi] - ay) - (ax - x[lo:hi]) * (avg_y - ay))
        a = lo + int(area.argmax()) if hi > lo else lo
        chosen[i + 1] = a
    return idx[np.unique(chosen)]
