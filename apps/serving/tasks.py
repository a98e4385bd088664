"""Celery tasks of serving: each sweeps or loads by id, acts as the system user (or the job's owner)
and calls one service. Beat sends `serving.evaluate_canaries` and `serving.retention_sweep`
(portal/settings/, "# --- Serving"); scoring jobs are sent by name after commit."""

from __future__ import annotations

from celery import shared_task

from apps.core.audit import acting_as, system_user
from apps.serving.inference.logbook import logs_expire
from apps.serving.scoring.tasks import score  # noqa: F401  (registers serving.score with the worker)
from apps.serving.services.canaries import canaries_evaluate_due


@shared_task(name="serving.evaluate_canaries")
def evaluate_canaries() -> dict:
    """Advance, complete or roll back every running canary whose step is due."""
    actor = system_user()
    with acting_as(actor):
        return canaries_evaluate_due(actor=actor)


@shared_task(name="serving.retention_sweep")
def retention_sweep(dry_run: bool = False) -> dict:
    """Delete prediction logs and traffic windows older than SERVING_LOG_RETENTION_DAYS (`dry_run`:
    count them only); `manage.py retention_purge` does the same across every store."""
    with acting_as(system_user()):
        return logs_expire(dry_run=bool(dry_run))
