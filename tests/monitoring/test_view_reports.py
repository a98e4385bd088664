"""The same checks between two ingest windows of a feature view: numeric and categorical drift,
new categories as a quality finding, PII features masked for people who may not see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from apps.features import services
from apps.monitoring.selectors import report_masked
from apps.monitoring.services.reports import report_request, report_run

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 5, 1, tzinfo=UTC)
FEATURES = [
    {"name": "balance", "dtype": "float64"},
    {"name": "segment", "dtype": "string"},
    {"name": "email", "dtype": "string", "pii": True},
]


@pytest.fixture(autouse=True)
def feature_store(settings, tmp_path):
    settings.FEATURE_STORE_ROOT = tmp_path / "features"
    settings.PORTAL_REGION = "default"


def window(start, n: int, seed: int, *, shift: float = 0.0, segments=("gold", "silver")) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "customer_id": i,
            "event_timestamp": (start + timedelta(seconds=i)).isoformat(),
            "balance": float(rng.normal(100 + shift, 10)),
            "segment": segments[i % len(segments)],
            "email": f"c{i}@example.com",
        }  # fmt: skip
        for i in range(n)
    ]


@pytest.fixture
def view(owner):
    customer = services.entity_create(
        actor=owner, name="customer", join_keys=[{"name": "customer_id", "dtype": "int64"}]
    )
    view = services.feature_view_create(actor=owner, name="customer-stats", entity=customer, features=FEATURES)
    services.feature_view_ingest(view=view, actor=owner, data=window(T0, 1500, seed=1))
    return view


def check(owner, view, current: list[dict], start) -> object:
    services.feature_view_ingest(view=view, actor=owner, data=current)
    report = report_request(
        actor=owner, feature_view=view, reference_start=T0, reference_end=T0 + timedelta(days=1),
        start=start, end=start + timedelta(days=1),
    )  # fmt: skip
    return report_run(report.pk)


def test_an_unchanged_window_is_ok_and_a_shifted_one_drifts(owner, view):
    day2 = T0 + timedelta(days=2)
    same = check(owner, view, window(day2, 1500, seed=2), day2)
    assert same.state == "succeeded", same.error
    assert same.features["balance"]["status"] == "ok" and same.features["segment"]["status"] == "ok"
    day4 = T0 + timedelta(days=4)
    moved = check(owner, view, window(day4, 1500, seed=3, shift=8.0, segments=("gold", "gold", "bronze")), day4)
    assert moved.features["balance"]["status"] == "drift"
    assert moved.features["segment"]["kind"] == "categorical" and moved.features["segment"]["status"] == "drift"
    assert moved.features["segment"]["chi2"]["p_value"] < 0.05
    new = moved.quality["features"]["segment"]["new_categories"]
    assert new["count"] > 0 and "bronze" in new["examples"]


def test_pii_features_keep_scores_but_lose_values_for_those_without_pii_rights(owner, view, viewer):
    from apps.core.sharing import share_object

    day2 = T0 + timedelta(days=2)
    report = check(owner, view, window(day2, 1500, seed=2), day2)
    share_object(obj=view, actor=owner, role="viewer", user=viewer)
    shown = report_masked(viewer, report)
    assert shown["features"]["email"].get("masked") and "current" not in shown["features"]["email"]
    assert "status" in shown["features"]["email"] and "current" in shown["features"]["balance"]


def test_an_empty_window_fails_with_its_reason(owner, view):
    far = T0 + timedelta(days=30)
    report = report_run(report_request(actor=owner, feature_view=view, reference_start=T0,
                                       reference_end=T0 + timedelta(days=1), start=far, end=far + timedelta(days=1)).pk)  # fmt: skip
    assert report.state == "failed" and "current window holds 0 rows" in report.error
