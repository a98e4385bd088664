"""`manage.py retention_purge [--dry-run]` across feature views, prediction logs and run artifacts
(issue 17): the dry run lists what would go and deletes nothing; the purge deletes it, keeps the
audit trail whole and records one summary event."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.core.audit import system_user
from apps.core.models import AuditEntry
from apps.experiments import services as experiments
from apps.experiments.models import RunArtifact
from apps.features.models import Partition
from apps.serving.models import Endpoint, PredictionLog
from tests.features.test_retention import aged  # noqa: F401  (fixture: a view with partitions past 30 days)

pytestmark = pytest.mark.django_db


@pytest.fixture
def expired(aged, owner, settings, tmp_path):  # noqa: F811
    """Past their windows: 2 partitions of `customer-stats`, 1 prediction log, 1 run artifact."""
    settings.SERVING_LOG_RETENTION_DAYS = 7
    settings.EXPERIMENTS_ARTIFACT_RETENTION_DAYS = 30
    settings.VAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "vault")},
    }
    endpoint = Endpoint.objects.create(owner=owner, name="fraud")
    old = timezone.now() - timedelta(days=8)
    for when in (old, timezone.now()):
        PredictionLog.objects.create(endpoint=endpoint, route="main", prediction_id="p", latency_ms=1, created_at=when)
    run = experiments.run_create(
        experiment=experiments.experiment_create(actor=owner, name="churn"), actor=owner, name="a"
    )
    artifact = experiments.run_artifact_upload(run=run, actor=owner, src=io.BytesIO(b"12345"), size=5, path="m.bin")
    RunArtifact.objects.filter(pk=artifact.pk).update(created_at=timezone.now() - timedelta(days=31))
    return aged


def purge(*args) -> str:
    out = io.StringIO()
    call_command("retention_purge", "--no-progress", *args, stdout=out)
    return out.getvalue()


def test_dry_run_lists_every_store_and_deletes_nothing(expired):
    system_user()  # created (and audited) on first use
    partitions, audits = Partition.objects.count(), AuditEntry.objects.count()
    text = purge("--dry-run")
    assert "feature views: customer-stats (older than 30 days): would delete 6 rows" in text
    assert "prediction logs: older than 7 days" in text and "would delete 1 logs" in text
    assert "run artifacts: experiment churn: would delete 1 files (5 bytes)" in text
    assert "Dry run: nothing was deleted." in text
    assert Partition.objects.count() == partitions and PredictionLog.objects.count() == 2
    assert RunArtifact.objects.count() == 1 and AuditEntry.objects.count() == audits


def test_purge_deletes_what_is_due_and_records_one_summary(expired, django_capture_on_commit_callbacks):
    audits = AuditEntry.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        text = purge()
    assert "Retention purge done." in text
    assert Partition.objects.count() == 1 and PredictionLog.objects.count() == 1 and not RunArtifact.objects.exists()
    summary = AuditEntry.objects.get(additional_data__event="retention.purge").additional_data["stores"]
    assert summary["feature views"]["items"] == 6 and summary["feature views"]["partitions"] == 2
    assert summary["prediction logs"]["logs_deleted"] == 1
    assert summary["run artifacts"]["artifacts"] == 1
    assert AuditEntry.objects.count() > audits  # nothing of the audit trail went
    assert "Nothing is past its retention window." in purge()
