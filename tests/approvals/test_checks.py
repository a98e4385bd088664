"""Each automated check keeps the values it compared and the rule, and never passes silently."""

from __future__ import annotations

import pytest

from apps.approvals import checks
from apps.approvals.checks import Subject
from apps.catalog.models import ModelCard
from apps.features.models import Entity, FeatureView
from tests.approvals.conftest import add_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def subject(model, v1, v2):
    return Subject(candidate=v2, current=v1, alias="production")


def test_metric_threshold_relative_to_the_version_behind_the_alias(subject, v1, v2):
    passed = checks.metric_threshold(subject, {"metric": "val_auc", "max_drop": 0.005})
    assert passed.status == "passed" and passed.rule == "val_auc >= production.val_auc - 0.005"
    assert passed.evidence["delta"] == pytest.approx(0.01) and passed.evidence["current_version"] == 1
    strict = checks.metric_threshold(subject, {"metric": "val_auc", "min": 0.95})
    assert strict.status == "failed" and "val_auc >= 0.95" in strict.rule
    loss = checks.metric_threshold(subject, {"metric": "val_loss", "lower_is_better": True, "max_drop": 0.0})
    assert loss.status == "passed" and loss.rule == "val_loss <= production.val_loss + 0"
    missing = checks.metric_threshold(subject, {"metric": "f1"})
    assert missing.status == "failed" and missing.evidence["candidate"] is None


def test_metric_threshold_without_a_current_version_says_so(v2):
    first = Subject(candidate=v2, current=None, alias="champion")
    result = checks.metric_threshold(first, {"metric": "val_auc", "max_drop": 0.005})
    assert result.status == "no_data" and "no version is behind champion" in result.evidence["reason"]
    floor = checks.metric_threshold(first, {"metric": "val_auc", "min": 0.9})
    assert floor.status == "passed" and floor.rule == "val_auc >= 0.9"


def test_onnx_parity_recorded_and_within_the_limit(subject):
    assert checks.onnx_parity(subject, {"max_abs_diff": 1e-4}).status == "passed"
    tight = checks.onnx_parity(subject, {"max_abs_diff": 1e-7})
    assert tight.status == "failed" and tight.evidence["max_abs_diff"] == 2e-6 and tight.evidence["limit"] == 1e-7


def test_model_card_lists_missing_sections(model, subject):
    ModelCard.objects.filter(model=model).update(limitations="")
    result = checks.model_card(subject, {})
    assert result.status == "failed" and result.evidence["missing_sections"] == ["Limitations"]


def test_lineage_needs_run_and_data_digest(model, owner, artifact):
    bare = add_version(model, owner, artifact, lineage={"run_id": "run-9"})
    result = checks.lineage(Subject(candidate=bare, current=None, alias="production"), {})
    assert result.status == "failed" and result.evidence["training_data_digest"] is None


def test_residency_compares_the_data_regions_with_the_allowed_ones(model, owner, artifact):
    entity = Entity.objects.create(name="customer", owner=owner, join_keys=[{"name": "customer_id", "dtype": "int64"}])
    for name, region in (("balances", "uae-north"), ("payments", "default")):
        FeatureView.objects.create(name=name, entity=entity, owner=owner, region=region, features=[])
    version = add_version(model, owner, artifact, lineage={"feature_views": ["balances", "payments"]})
    subject = Subject(candidate=version, current=None, alias="production")
    inside = checks.residency(subject, {"allowed_regions": ["uae-north", "default"]})
    assert inside.status == "passed" and inside.evidence["data_regions"] == {
        "balances": "uae-north",
        "payments": "default",
    }
    outside = checks.residency(subject, {"allowed_regions": ["default"]})
    assert outside.status == "failed" and outside.evidence["outside"] == ["uae-north"]
    assert checks.residency(subject, {}).status == "no_data"


def test_open_alerts_fail_the_gate_until_resolved(subject):
    from apps.monitoring.services.alerts import alert_raise, alert_resolve

    assert checks.open_alerts(subject, {}).status == "passed"
    model = subject.candidate.model
    warning, _ = alert_raise(kind="drift", dedup_key="gate:w", title="Drift", model=model)
    assert checks.open_alerts(subject, {}).status == "passed"  # critical only, by default
    result = checks.open_alerts(subject, {"severity": "warning"})
    assert result.status == "failed" and result.evidence["open"][0]["id"] == warning.pk
    critical, _ = alert_raise(kind="job_failed", dedup_key="gate:c", title="Failed", severity="critical", model=model)
    assert checks.open_alerts(subject, {}).status == "failed"
    alert_resolve(alert=critical, actor=model.owner)
    assert checks.open_alerts(subject, {}).status == "passed"
    assert checks.run_check("open_alerts", subject, {"severity": "loud"}).status == "failed"  # a typo blocks


def test_a_broken_check_fails_with_its_error(subject):
    result = checks.run_check("metric_threshold", subject, {"metric": "val_auc", "max_drop": "lots"})
    assert result.status == "failed" and "ValueError" in result.evidence["error"]
