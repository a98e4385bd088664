"""Latency histograms over fixed bucket edges (models.LATENCY_EDGES_MS), as traffic windows keep them."""

from __future__ import annotations

from bisect import bisect_left

from apps.serving.models import LATENCY_EDGES_MS

BUCKETS = len(LATENCY_EDGES_MS) + 1


def empty() -> list[int]:
    return [0] * BUCKETS


def bucket(latency_ms: float) -> int:
    """Index of the bucket holding `latency_ms` (upper edges inclusive; above the last edge: the last)."""
    return bisect_left(LATENCY_EDGES_MS, latency_ms)


def add(into: list[int], other: list[int]) -> list[int]:
    """Element-wise sum (either may be shorter, e.g. an empty list from a new row)."""
    size = max(len(into), len(other), BUCKETS)
    return [(into[i] if i < len(into) else 0) + (other[i] if i < len(other) else 0) for i in range(size)]


def quantile(hist: list[int], q: float) -> float | None:
    """The q-quantile in ms, interpolated linearly inside its bucket; None when the histogram is empty.
    Above the last edge it answers the last edge (a lower bound, said so by callers)."""
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count and seen + count >= rank:
            lower = LATENCY_EDGES_MS[i - 1] if i > 0 else 0.0
            if i >= len(LATENCY_EDGES_MS):
                return float(LATENCY_EDGES_MS[-1])
            upper = LATENCY_EDGES_MS[i]
            return lower + (upper - lower) * max(0.0, min(1.0, (rank - seen) / count))
        seen += count
    return float(LATENCY_EDGES_MS[-1])
