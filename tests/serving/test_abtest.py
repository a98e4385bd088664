"""A/B statistics against scipy's own implementations on the raw outcomes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from apps.serving import abtest


def test_wilson_interval_matches_scipy():
    low, high = abtest.wilson_interval(37, 120)
    ref = stats.binomtest(37, 120).proportion_ci(confidence_level=0.95, method="wilson")
    assert low == pytest.approx(ref.low, abs=1e-9)
    assert high == pytest.approx(ref.high, abs=1e-9)


def test_mean_interval_matches_student_t():
    values = np.random.default_rng(3).normal(5.0, 2.0, size=57)
    low, high = abtest.mean_interval(abtest.group_of(values))
    ref = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert (low, high) == pytest.approx(ref, rel=1e-9)


def test_two_proportion_z_matches_chi_square_without_correction():
    a = abtest.group_of([1] * 120 + [0] * 880)
    b = abtest.group_of([1] * 150 + [0] * 850)
    _, ref, _, _ = stats.chi2_contingency([[120, 880], [150, 850]], correction=False)
    assert abtest.two_proportion_z(a, b) == pytest.approx(ref, rel=1e-9)
    assert 0.03 < ref < 0.06  # a known borderline case: the test is not trivially 0 or 1


def test_welch_t_matches_scipy_on_raw_outcomes():
    rng = np.random.default_rng(7)
    x, y = rng.normal(1.0, 1.0, 80), rng.normal(1.4, 3.0, 50)
    ref = stats.ttest_ind(x, y, equal_var=False).pvalue
    assert abtest.welch_t(abtest.group_of(x), abtest.group_of(y)) == pytest.approx(ref, rel=1e-7)


def test_sample_size_for_proportions_is_the_textbook_value():
    # Fleiss without continuity correction: p1 = 0.10, p2 = 0.12, alpha 0.05 two-sided, power 0.8 -> 3,841
    assert abtest.sample_size_proportions(0.10, 0.02) == 3841


def test_sample_size_for_means_gives_the_power_asked_for():
    n = abtest.sample_size_means(sd=2.0, min_effect=0.5)
    assert n == 252  # 2 * (1.96 + 0.8416)^2 * 4 / 0.25 = 251.2
    power = stats.norm.sf(1.959964 - 0.5 / (2.0 * np.sqrt(2 / n)))
    assert 0.8 <= power < 0.81


def test_groups_from_sums_equal_groups_from_values():
    values = [0.5, 2.0, 3.25, -1.0]
    group = abtest.Group(4, sum(values), sum(v * v for v in values), binary=False)
    assert group.variance == pytest.approx(np.var(values, ddof=1))
    assert not abtest.group_of(values).binary and abtest.group_of([0, 1, True]).binary


def test_undefined_comparisons_say_none():
    assert abtest.wilson_interval(0, 0) is None
    assert abtest.welch_t(abtest.group_of([1.0]), abtest.group_of([1.0, 2.0])) is None
    assert abtest.two_proportion_z(abtest.group_of([]), abtest.group_of([1])) is None
