"""The demo seed leaves the monitoring pages full on the first run: a profiled demo endpoint, an
hour of ordinary traffic checked ok, an hour with two drifting measurements checked as drift, and
the alerts it raised; again: no change."""

from __future__ import annotations

import io

import pytest

from apps.accounts import roles
from apps.monitoring import seed
from apps.monitoring.models import Alert, DriftReport, ReferenceProfile
from tests.conftest import make_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_demo_seed_checks_two_hours_and_is_idempotent():
    users = {"engineer": make_user("engineer", roles.ML_ENGINEERS)}
    out = io.StringIO()
    seed.seed(users=users, team=None, out=out)
    reports = list(DriftReport.objects.order_by("start"))
    assert [r.status for r in reports] == ["ok", "drift"], [r.error for r in reports]
    assert set(reports[1].summary["drifted"]) >= {"mean radius", "mean area"}
    assert ReferenceProfile.objects.get().state == "ready"
    alert = Alert.objects.get(kind="drift")
    assert alert.endpoint.name == "fraud-demo" and alert.state == "open"
    # the inflated measurements also fall outside the training range: a data-quality alert
    assert set(Alert.objects.values_list("kind", flat=True)) == {"drift", "data_quality"}
    seed.seed(users=users, team=None, out=out)
    assert DriftReport.objects.count() == 2 and "left alone" in out.getvalue()
