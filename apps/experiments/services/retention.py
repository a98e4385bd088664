"""Retention of run artifacts: files stored in the vault that are older than their window go (the
blob row and its ciphertext with the artifact row, models._delete_artifact_blob).

The window is EXPERIMENTS_ARTIFACT_RETENTION_DAYS (none: keep forever), or the experiment's tag
`retention_days` (a whole number of days; "0" or "forever" keeps its artifacts). Never purged:
artifacts of a run a registered model version was built from (`ModelVersion.run_id`, lineage),
artifacts kept outside the portal (only a `uri`), and artifacts pinned to another region (that
region's portal purges its own). One audit event per purge, never one per file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum

from apps.catalog.models import ModelVersion
from apps.core import residency
from apps.core.audit import audit_event
from apps.experiments.models import Experiment, RunArtifact

OVERRIDE_TAG = "retention_days"
BATCH = 200


def _days(value) -> int | None | bool:
    """An experiment's override: days, None (keep forever), or False (not set or not understood)."""
    text = str(value).strip().lower()
    if text in ("0", "forever", "keep"):
        return None
    return int(text) if text.isdigit() else False


def protected_run_ids() -> set[int]:
    """Runs a registered model version was built from: their artifacts are lineage and stay."""
    return {int(r) for r in ModelVersion.objects.exclude(run_id="").values_list("run_id", flat=True) if r.isdigit()}


def artifacts_due(*, now: datetime, experiment: Experiment | None = None) -> QuerySet[RunArtifact]:
    """Vault-stored run artifacts past their window that this portal holds and no version was built from."""
    default = settings.EXPERIMENTS_ARTIFACT_RETENTION_DAYS
    overrides: dict[int, int | None] = {}
    tagged = Experiment.objects.filter(tags__has_key=OVERRIDE_TAG).values_list("pk", "tags")
    for pk, tags in tagged:
        days = _days(tags.get(OVERRIDE_TAG))
        if days is not False:
            overrides[pk] = days
    due = Q(pk__in=[])
    if default:
        due |= Q(created_at__lt=now - timedelta(days=default)) & ~Q(run__experiment_id__in=list(overrides))
    for pk, days in overrides.items():
        if days:
            due |= Q(run__experiment_id=pk, created_at__lt=now - timedelta(days=days))
    here = Q(run__region=residency.UNPINNED) | Q(run__region=residency.process_region())
    found = RunArtifact.objects.filter(due, here, blob__isnull=False).exclude(run_id__in=protected_run_ids())
    if experiment is not None:
        found = found.filter(run__experiment=experiment)
    return found.order_by("pk")


def due_by_experiment(*, now: datetime) -> list[dict]:
    """[{experiment id, name, artifacts, bytes}] of what `run_artifacts_purge` would delete now."""
    rows = (
        artifacts_due(now=now)
        .values("run__experiment_id", "run__experiment__name")
        .annotate(artifacts=Count("pk"), size=Sum("size"))
        .order_by("run__experiment__name")
    )
    return [
        {
            "experiment": r["run__experiment_id"],
            "name": r["run__experiment__name"],
            "artifacts": r["artifacts"],
            "bytes": r["size"] or 0,
        }
        for r in rows
    ]


def run_artifacts_purge(
    *,
    actor,
    now: datetime,
    experiment: Experiment | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    audit: bool = True,
) -> dict:
    """Delete (or with `dry_run` only count) the run artifacts due now, in batches of BATCH, each in
    its own transaction; the lineage check is repeated per batch, so a version registered meanwhile
    keeps its run's files. One audit event (`experiments.artifact_retention`) unless `audit` is False
    (the caller records its own summary). For the daily task and `manage.py retention_purge`."""
    due = artifacts_due(now=now, experiment=experiment)
    ids = list(due.values_list("pk", flat=True))
    size = due.aggregate(total=Sum("size"))["total"] or 0
    deleted = 0
    if not dry_run:
        for start in range(0, len(ids), BATCH):
            with transaction.atomic():
                batch = RunArtifact.objects.select_for_update().filter(pk__in=ids[start : start + BATCH])
                for artifact in batch.exclude(run_id__in=protected_run_ids()):
                    artifact.delete()
                    deleted += 1
            if progress is not None:
                progress(len(ids[start : start + BATCH]))
    summary = {
        "artifacts": len(ids) if dry_run else deleted,
        "bytes": size,
        "dry_run": dry_run,
        "default_days": settings.EXPERIMENTS_ARTIFACT_RETENTION_DAYS,
        "experiment": experiment.pk if experiment is not None else None,
    }
    if audit and not dry_run:
        audit_event(actor=actor, event="experiments.artifact_retention", data=summary)
    return summary
