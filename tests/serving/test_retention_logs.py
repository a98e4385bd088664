"""Prediction-log retention's dry run (issue 17): it counts what SERVING_LOG_RETENTION_DAYS would delete
and deletes nothing; the real sweep then deletes exactly that."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.serving import tasks
from apps.serving.models import Endpoint, PredictionLog, TrafficWindow
from tests.serving.conftest import version_of

pytestmark = pytest.mark.django_db


def test_dry_run_counts_then_the_sweep_deletes_the_same(owner, settings, scorer):
    settings.SERVING_LOG_RETENTION_DAYS = 7
    endpoint = Endpoint.objects.create(owner=owner, name="fraud")
    old = timezone.now() - timedelta(days=8)
    for when in (old, old, timezone.now()):
        PredictionLog.objects.create(endpoint=endpoint, route="main", prediction_id="p", latency_ms=1, created_at=when)
    TrafficWindow.objects.create(endpoint=endpoint, route="main", version=version_of(scorer, 1), minute=old)
    due = tasks.retention_sweep(dry_run=True)
    assert (due["logs_due"], due["windows_due"]) == (2, 1)
    assert PredictionLog.objects.count() == 3 and TrafficWindow.objects.count() == 1
    done = tasks.retention_sweep()
    assert (done["logs_deleted"], done["windows_deleted"]) == (2, 1) and PredictionLog.objects.count() == 1
