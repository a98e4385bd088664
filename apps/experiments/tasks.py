"""Celery tasks of the experiments app: scheduled maintenance that calls one service.

Sent by name from the beat schedule (portal/settings/, CELERY_BEAT_SCHEDULE); nothing imports
this module but Celery's autodiscovery.
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from apps.core.audit import acting_as, system_user
from apps.experiments.services import run_artifacts_purge, runs_mark_stale


@shared_task(name="experiments.mark_stale_runs")
def mark_stale_runs() -> dict:
    """Flag running runs whose client went silent past EXPERIMENTS_STALE_AFTER_S (see
    `services.runs_mark_stale`): shown as stale, never counted as training."""
    with acting_as(system_user()):
        return {"stale": runs_mark_stale()}


@shared_task(name="experiments.retention_sweep")
def retention_sweep() -> dict:
    """Daily (beat): delete run artifacts past EXPERIMENTS_ARTIFACT_RETENTION_DAYS (or their
    experiment's `retention_days` tag), never those a model version was built from; one audit event."""
    actor = system_user()
    with acting_as(actor):
        return run_artifacts_purge(actor=actor, now=timezone.now())
