"""Retention of run artifacts (issue 17): vault files past EXPERIMENTS_ARTIFACT_RETENTION_DAYS (or an
experiment's `retention_days` tag) go with their blobs, daily; never the artifacts of a run a model
version was built from, never artifacts pinned to another region, never an audit entry. One audit
event per purge."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.catalog import services as catalog
from apps.catalog.models import ModelVersion
from apps.core import vault
from apps.core.models import AuditEntry, VaultBlob
from apps.experiments import services, tasks
from apps.experiments.models import RunArtifact
from apps.experiments.services.retention import run_artifacts_purge

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def window(settings, tmp_path):
    settings.EXPERIMENTS_ARTIFACT_RETENTION_DAYS = 30
    settings.PORTAL_REGION = "default"
    settings.PORTAL_REGIONS = ["uae-north"]
    settings.VAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "vault")},
    }


def stored(run, owner, path: str, age_days: int) -> RunArtifact:
    artifact = services.run_artifact_upload(run=run, actor=owner, src=io.BytesIO(b"x" * 10), size=10, path=path)
    RunArtifact.objects.filter(pk=artifact.pk).update(created_at=timezone.now() - timedelta(days=age_days))
    return artifact


def built_into_a_version(run, owner) -> ModelVersion:
    """A model version whose lineage names `run` (rows only: what the purge reads is `run_id`)."""
    model = catalog.model_create(actor=owner, name=f"from-run-{run.pk}")
    blob = VaultBlob.objects.create(
        storage_key=f"test/{run.pk}", wrapped_key="x", kid="k", plaintext_size=1, ciphertext_size=1, sha256="0" * 64
    )
    return ModelVersion.objects.create(model=model, version=1, artifact=blob, created_by=owner, run_id=str(run.pk))


@pytest.fixture
def runs(owner):
    exp = services.experiment_create(actor=owner, name="churn")
    return services.run_create(experiment=exp, actor=owner, name="a"), services.run_create(
        experiment=exp, actor=owner, name="b"
    )


def ciphertext(artifact: RunArtifact) -> Path:
    return Path(vault.storage().path(artifact.blob.storage_key))


def test_old_artifacts_go_with_their_blobs_new_and_lineage_ones_stay(owner, runs, django_capture_on_commit_callbacks):
    plain, lineage = runs
    old = stored(plain, owner, "old.bin", 40)
    new = stored(plain, owner, "new.bin", 5)
    kept = stored(lineage, owner, "model.bin", 400)
    built_into_a_version(lineage, owner)
    old_file, old_blob = ciphertext(old), old.blob_id
    audits = AuditEntry.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.retention_sweep()
    assert result["artifacts"] == 1 and result["bytes"] == 10 and result["dry_run"] is False
    assert set(RunArtifact.objects.values_list("path", flat=True)) == {"new.bin", "model.bin"}
    assert not VaultBlob.objects.filter(pk=old_blob).exists() and not old_file.exists()
    assert ciphertext(new).exists() and ciphertext(kept).exists()
    events = AuditEntry.objects.filter(additional_data__event="experiments.artifact_retention")
    assert events.count() == 1 and events.get().additional_data["artifacts"] == 1
    assert AuditEntry.objects.count() > audits  # audit entries are never purged


def test_dry_run_counts_and_deletes_nothing(owner, runs):
    stored(runs[0], owner, "old.bin", 40)
    result = run_artifacts_purge(actor=owner, now=timezone.now(), dry_run=True)
    assert (result["artifacts"], result["bytes"], result["dry_run"]) == (1, 10, True)
    assert RunArtifact.objects.count() == 1
    assert not AuditEntry.objects.filter(additional_data__event="experiments.artifact_retention").exists()


def test_no_window_keeps_everything_unless_the_experiment_sets_one(owner, settings):
    settings.EXPERIMENTS_ARTIFACT_RETENTION_DAYS = None
    short = services.experiment_create(actor=owner, name="short", tags={"retention_days": "7"})
    forever = services.experiment_create(actor=owner, name="forever")
    stored(services.run_create(experiment=short, actor=owner, name="a"), owner, "a.bin", 10)
    stored(services.run_create(experiment=forever, actor=owner, name="b"), owner, "b.bin", 1000)
    assert run_artifacts_purge(actor=owner, now=timezone.now())["artifacts"] == 1
    assert list(RunArtifact.objects.values_list("path", flat=True)) == ["b.bin"]


def test_an_experiment_can_keep_its_artifacts_forever(owner):
    keep = services.experiment_create(actor=owner, name="keep", tags={"retention_days": "forever"})
    stored(services.run_create(experiment=keep, actor=owner, name="a"), owner, "a.bin", 400)
    assert run_artifacts_purge(actor=owner, now=timezone.now())["artifacts"] == 0


def test_artifacts_pinned_to_another_region_are_left_to_that_region(owner, settings):
    settings.PORTAL_REGION = "uae-north"
    gulf = services.experiment_create(actor=owner, name="gulf", region="uae-north")
    stored(services.run_create(experiment=gulf, actor=owner, name="a"), owner, "a.bin", 400)
    settings.PORTAL_REGION = "default"
    assert run_artifacts_purge(actor=owner, now=timezone.now())["artifacts"] == 0
    settings.PORTAL_REGION = "uae-north"
    assert run_artifacts_purge(actor=owner, now=timezone.now())["artifacts"] == 1
