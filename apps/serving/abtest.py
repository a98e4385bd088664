"""A/B statistics over per-route outcome aggregates: pure functions, no database, no Django.

Each group is summarised as `Group(n, total, total_sq, binary)` (count, sum and sum of squares of
the outcomes, and whether every outcome was 0 or 1), which is what one SQL aggregate gives, so a
report never loads the outcomes themselves.

- Rates (all outcomes 0/1): Wilson score interval; pooled two-proportion z-test; sample size per
  group for an absolute difference (Fleiss' formula without continuity correction).
- Means: Student t interval; Welch's t-test (Welch-Satterthwaite degrees of freedom); sample size
  per group from the normal approximation with the pooled standard deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05
POWER = 0.8
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Group:
    n: int
    total: float
    total_sq: float
    binary: bool = True

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (n - 1 in the denominator); None below two outcomes."""
        if self.n < 2:
            return None
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))


def group_of(values) -> Group:
    values = [float(v) for v in values]
    return Group(len(values), sum(values), sum(v * v for v in values), all(v in (0.0, 1.0) for v in values))


def _z(level: float) -> float:
    return float(stats.norm.ppf(level))


def wilson_interval(successes: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion; None when n is 0."""
    if n <= 0:
        return None
    z = _z(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(group: Group, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Student t interval of a mean; None below two outcomes."""
    variance = group.variance
    if variance is None:
        return None
    half = float(stats.t.ppf(0.5 + confidence / 2, group.n - 1)) * math.sqrt(variance / group.n)
    return group.mean - half, group.mean + half


def two_proportion_z(a: Group, b: Group) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; None when it is undefined."""
    if a.n == 0 or b.n == 0:
        return None
    pooled = (a.total + b.total) / (a.n + b.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n))
    if se == 0:
        return 1.0  # both groups all 0 or all 1: no evidence of a difference
    z = (b.mean - a.mean) / se
    return float(2 * stats.norm.sf(abs(z)))


def welch_t(a: Group, b: Group) -> float | None:
    """Two-sided p-value of Welch's t-test; None below two outcomes a side or with no variance."""
    va, vb = a.variance, b.variance
    if va is None or vb is None:
        return None
    sa, sb = va / a.n, vb / b.n
    if sa + sb == 0:
        return 1.0 if a.mean == b.mean else 0.0
    t = (b.mean - a.mean) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / ((sa * sa / (a.n - 1) if sa else 0.0) + (sb * sb / (b.n - 1) if sb else 0.0))
    return float(2 * stats.t.sf(abs(t), df))


def sample_size_proportions(p: float, min_effect: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Outcomes per group to detect an absolute change `min_effect` from rate `p` (two-sided)."""
    if min_effect <= 0:
        return None
    q = min(1.0, p + min_effect) if p + min_effect <= 1 else max(0.0, p - min_effect)
    if q == p:
        return None
    bar = (p + q) / 2
    za, zb = _z(1 - alpha / 2), _z(power)
    numerator = za * math.sqrt(2 * bar * (1 - bar)) + zb * math.sqrt(p * (1 - p) + q * (1 - q))
    return math.ceil(numerator * numerator / ((q - p) ** 2))


def sample_size_means(sd: float, min_effect: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Outcomes per group to detect an absolute difference `min_effect` of means with standard deviation `sd`."""
    if min_effect <= 0 or sd is None:
        return None
    za, zb = _z(1 - alpha / 2), _z(power)
    return max(2, math.ceil(2 * (za + zb) ** 2 * sd * sd / (min_effect * min_effect)))


def interval(group: Group, binary: bool) -> tuple[float, float] | None:
    return wilson_interval(group.total, group.n) if binary else mean_interval(group)


def p_value(a: Group, b: Group, binary: bool) -> float | None:
    return two_proportion_z(a, b) if binary else welch_t(a, b)


def sample_size(baseline: Group, group: Group, binary: bool, min_effect: float | None) -> int | None:
    """Outcomes each route needs for `min_effect`, from the baseline's rate (or pooled sd for means)."""
    if min_effect is None or baseline.n == 0:
        return None
    if binary:
        return sample_size_proportions(baseline.mean, min_effect)
    variances = [v for v in (baseline.variance, group.variance) if v is not None]
    if not variances:
        return None
    return sample_size_means(math.sqrt(sum(variances) / len(variances)), min_effect)
