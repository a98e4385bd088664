"""The drift and data-quality engine (apps.monitoring.stats): verdicts on planted shifts, KS accuracy, profile size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import ks_2samp

from apps.monitoring.stats import DEFAULT_THRESHOLDS, drift_compare, profile_build, quality_check

FEATURES = [f"f{k}" for k in range(8)]
SHIFTED = {"f1", "f4", "f6"}


def _numeric(seed: int, rows: int, shift: float = 0.0, shifted=()) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(rows) + (shift if name in shifted else 0.0) for name in FEATURES}


@pytest.fixture(scope="module")
def reference():
    columns = _numeric(1, 50_000)
    rng = np.random.default_rng(2)
    columns["colour"] = rng.choice(np.array(["red", "green", "blue"], dtype=object), 50_000, p=[0.5, 0.3, 0.2])
    return columns


@pytest.fixture(scope="module")
def profile(reference):
    # Stored as JSON in the database: every test works on the round-tripped profile.
    return json.loads(json.dumps(profile_build(reference)))


def _colour(seed: int, rows: int, labels=("red", "green", "blue"), p=(0.5, 0.3, 0.2)) -> np.ndarray:
    return np.random.default_rng(seed).choice(np.array(labels, dtype=object), rows, p=p)


def test_planted_shift_is_found_on_exactly_those_features(profile):
    current = _numeric(3, 10_000, shift=0.5, shifted=SHIFTED) | {"colour": _colour(4, 10_000)}
    report = drift_compare(profile, current)
    flagged = {name for name, r in report["features"].items() if r["status"] == "drift"}
    assert flagged == SHIFTED
    assert report["drifted"] == 3 and report["compared"] == 9
    assert report["status"] == "warning"  # 3 of 9 is under the default drift share of 0.5
    shifted = report["features"]["f1"]
    assert shifted["psi"] > 0.2 and shifted["ks"]["p_value"] < 1e-10 and shifted["js"] > 0.1
    assert shifted["current"]["edges"] == shifted["reference"]["edges"]
    assert sum(shifted["current"]["counts"]) == 10_000 and sum(shifted["reference"]["counts"]) == 50_000


def test_unshifted_sample_is_not_flagged(profile):
    # At p < 0.05 about one unshifted sample in three has a false alarm among 9 columns; this seed has none.
    report = drift_compare(profile, _numeric(20, 10_000) | {"colour": _colour(120, 10_000)})
    assert report["status"] == "ok", {n: r["status"] for n, r in report["features"].items()}
    assert report["drifted"] == 0


def test_categorical_drift_and_new_category(profile):
    changed = drift_compare(profile, {"colour": _colour(7, 10_000, p=(0.3, 0.3, 0.4))})["features"]["colour"]
    assert changed["status"] == "drift" and changed["chi2"]["p_value"] < 1e-10
    assert changed["reference"]["categories"] == changed["current"]["categories"]

    labels = ("red", "green", "blue", "purple")
    new = drift_compare(profile, {"colour": _colour(8, 10_000, labels, p=(0.45, 0.3, 0.2, 0.05))})["features"]
    colour = new["colour"]
    assert colour["status"] == "drift" and colour["new"] == pytest.approx(500, abs=100)
    assert colour["current"]["categories"][-1] == "new" and colour["current"]["new_examples"] == ["purple"]

    same = drift_compare(profile, {"colour": _colour(9, 10_000)})["features"]["colour"]
    assert same["status"] == "ok" and same["chi2"]["p_value"] > 0.05 and same["new"] == 0


def test_missing_feature_is_reported_not_raised(profile):
    current = _numeric(10, 5_000)
    report = drift_compare(profile, current)
    assert report["features"]["colour"]["status"] == "missing"
    assert report["compared"] == 8 and report["status"] == "warning"


def test_thresholds_and_overrides_change_the_verdict(profile):
    current = _numeric(3, 10_000, shift=0.5, shifted=SHIFTED) | {"colour": _colour(4, 10_000)}
    assert drift_compare(profile, current, thresholds={"drift_share": 0.3})["status"] == "drift"
    lenient = {"psi": 1.0, "ks_p": None, "js": 1.0}
    report = drift_compare(profile, current, overrides={"f1": lenient})
    assert report["features"]["f1"]["status"] == "ok"
    assert report["features"]["f1"]["threshold"] == DEFAULT_THRESHOLDS | lenient
    assert report["features"]["f4"]["status"] == "drift" and report["drifted"] == 2
    # PSI alone, with the warning band at half the threshold: a 0.5 sd shift has PSI ~0.25.
    psi_only = drift_compare(profile, current, thresholds={"ks_p": None, "js": None, "psi": 0.4})
    assert {r["status"] for n, r in psi_only["features"].items() if n in SHIFTED} == {"warning"}
    assert psi_only["status"] == "warning"


def test_prediction_drift_makes_the_report_drift():
    rng = np.random.default_rng(11)
    reference = {"x": rng.standard_normal(20_000)}
    profile = profile_build(
        reference, predictions={"score": rng.beta(2, 5, 20_000), "label": rng.integers(0, 2, 20_000).astype(str)}
    )
    assert profile["predictions"]["label"]["kind"] == "categorical"
    same = drift_compare(
        profile,
        {"x": rng.standard_normal(5_000)},
        predictions={"score": rng.beta(2, 5, 5_000), "label": rng.integers(0, 2, 5_000).astype(str)},
    )
    assert same["status"] == "ok"
    moved = drift_compare(
        profile,
        {"x": rng.standard_normal(5_000)},
        predictions={"score": rng.beta(5, 2, 5_000), "label": rng.integers(0, 2, 5_000).astype(str)},
    )
    assert moved["predictions"]["score"]["status"] == "drift" and moved["drifted"] == 0
    assert moved["status"] == "drift"


CASES = {
    "normal, no shift": lambda r, n: r.standard_normal(n),
    "normal, +0.05 sd": lambda r, n: r.standard_normal(n) + 0.05,
    "normal, sd x1.1": lambda r, n: r.standard_normal(n) * 1.1,
    "lognormal": lambda r, n: r.lognormal(0, 2, n),
    "integers 0..20": lambda r, n: r.integers(0, 21, n).astype(float),
    "ties and NaN": lambda r, n: np.where(r.random(n) < 0.1, np.nan, np.round(r.standard_normal(n), 1)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_ks_approximation_against_scipy(case):
    make = CASES[case]
    # The normal cases compare with a standard normal reference, the others with their own distribution.
    source = CASES["normal, no shift"] if case.startswith("normal") else make
    ref = source(np.random.default_rng(13), 100_000)
    cur = make(np.random.default_rng(14), 30_000)
    profile = profile_build({"x": ref})
    got = drift_compare(profile, {"x": cur})["features"]["x"]["ks"]
    exact = ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)], method="asymp")
    # The reported statistic is a lower bound within max_error of scipy's exact statistic.
    assert got["statistic"] <= exact.statistic + 1e-12
    assert exact.statistic <= got["statistic"] + got["max_error"] + 1e-12
    assert got["max_error"] <= 0.0011  # one grid cell of reference (1/2000) plus one of current data at most
    if exact.pvalue < 1e-3 or exact.pvalue > 0.2:  # clear cases: the same decision at 0.05
        assert (got["p_value"] < 0.05) == (exact.pvalue < 0.05)
    if case.startswith("integers"):
        assert got["max_error"] == 0 and got["statistic"] == pytest.approx(exact.statistic, abs=1e-12)


def test_profile_is_json_and_within_20_kb_per_feature():
    rng = np.random.default_rng(15)
    columns = {
        "normal": rng.standard_normal(300_000),
        "heavy": rng.standard_cauchy(300_000),
        "ints": rng.integers(0, 1_000_000, 300_000),
        "ids": np.array([f"user-{i}" for i in rng.integers(0, 5_000, 300_000)], dtype=object),
    }
    profile = profile_build(columns)
    assert profile["format"] == 1 and profile["rows"] == 300_000
    for name, summary in profile["features"].items():
        size = len(json.dumps(summary))
        assert size <= 20_000, (name, size)
    normal = profile["features"]["normal"]
    assert set(normal["quantiles"]) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
    assert 20 <= len(normal["hist"]["counts"]) <= 30 and sum(normal["hist"]["counts"]) == 300_000
    assert normal["grid"]["size"] > 1_000
    ids = profile["features"]["ids"]
    assert ids["kind"] == "categorical" and len(ids["top"]) == 100 and ids["other"] > 0


def test_numeric_columns_from_json_and_missing_values():
    rng = np.random.default_rng(16)
    ref = rng.standard_normal(20_000)
    ref[:1_000] = np.nan
    ref[1_000:1_010] = np.inf  # infinities are missing values too
    profile = profile_build({"x": ref})
    assert profile["features"]["x"]["missing"] == 1_010 and profile["features"]["x"]["n"] == 18_990
    assert np.isfinite(profile["features"]["x"]["max"])
    as_json = np.array(
        [None if i % 10 == 0 else float(v) for i, v in enumerate(rng.standard_normal(5_000))], dtype=object
    )
    result = drift_compare(profile, {"x": as_json})["features"]["x"]
    assert result["kind"] == "numeric" and result["missing"] == 500 and result["n"] == 4_500
    assert result["status"] == "ok"


def test_quality_violations():
    rng = np.random.default_rng(17)
    reference = {
        "age": rng.integers(18, 90, 20_000).astype(float),
        "income": rng.lognormal(10, 1, 20_000),
        "plan": rng.choice(np.array(["free", "pro", "team"], dtype=object), 20_000),
        "region": rng.choice(np.array(["eu", "us"], dtype=object), 20_000),
    }
    profile = profile_build(reference)
    clean = {name: values[:5_000].copy() for name, values in reference.items()}
    ok = quality_check(profile, clean)
    assert ok["status"] == "ok", ok

    rows = 5_000
    age = np.array([float(v) for v in reference["age"][:rows]], dtype=object)
    age[:100] = "unknown"  # text in a numeric column: the JSON sample arrives as an object array
    age[100:120] = 150.0  # out of the reference range
    income = reference["income"][:rows].copy()
    income[:1_000] = np.nan  # 20 % missing against 0 % in the reference
    plan = reference["plan"][:rows].copy()
    plan[:60] = "enterprise"
    current = {"age": age, "income": income, "plan": plan, "extra": np.zeros(rows)}  # region missing
    report = quality_check(profile, current)
    assert report["status"] == "violation"
    schema = report["schema"]
    assert schema["missing_columns"] == ["region"] and schema["unexpected_columns"] == ["extra"]
    assert schema["wrong_type"]["age"]["count"] == 100 and schema["wrong_type"]["age"]["examples"] == ["unknown"] * 5
    assert schema["wrong_type"]["age"]["status"] == "violation"  # 2 % of the rows
    features = report["features"]
    assert features["age"]["out_of_range"]["count"] == 20 and features["age"]["out_of_range"]["examples"] == [150.0] * 5
    assert features["age"]["missing"]["count"] == 0  # wrong types are not counted as missing
    assert features["income"]["missing"]["rate"] == pytest.approx(0.2) and features["income"]["status"] == "violation"
    new = features["plan"]["new_categories"]
    assert new["count"] == 60 and new["examples"] == ["enterprise"] and new["status"] == "violation"
    assert "region" not in features


def test_quality_expected_kind_overrides_the_profile():
    profile = profile_build({"code": np.arange(1_000, dtype=float)})
    report = quality_check(profile, {"code": np.array(["a"] * 10, dtype=object)}, expected={"code": "categorical"})
    assert report["schema"]["wrong_type"] == {}
    assert report["features"]["code"]["kind"] == "categorical"


@pytest.mark.parametrize("effective_n", [20, 100, 5_000, 20_000])  # kstwo.sf itself is slow beyond
def test_ks_p_value_matches_scipy_asymptotic(effective_n):
    from scipy.stats import kstwo

    from apps.monitoring.stats.drift import ks_p_value

    for statistic in np.linspace(0.5, 2.0, 7) / np.sqrt(effective_n):
        exact = kstwo.sf(statistic, effective_n)
        assert ks_p_value(statistic, effective_n) == pytest.approx(exact, rel=0.03, abs=1e-4)


def test_effect_sizes_need_min_rows(profile):
    small = {"f0": np.random.default_rng(21).standard_normal(300) + 0.8}
    effect_only = {"ks_p": None}
    assert drift_compare(profile, small, thresholds=effect_only)["features"]["f0"]["status"] == "ok"
    report = drift_compare(profile, small, thresholds=effect_only | {"min_rows": 100})
    assert report["features"]["f0"]["status"] == "drift" and report["features"]["f0"]["psi"] > 0.2
    assert drift_compare(profile, small)["features"]["f0"]["status"] == "drift"  # the KS test alone
