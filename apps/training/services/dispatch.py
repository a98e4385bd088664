"""Where training sends Celery tasks: by name through `apps.core.dispatch.enqueue`, once the
transaction that asked commits.

Services call these; the worker side (`apps.training.tasks`) is never imported from here, so no
service depends on the tasks that call services. A rolled-back launch sends nothing.
"""

from __future__ import annotations

import logging

from django.db import transaction

from apps.core.dispatch import enqueue
from apps.training.models import TrainingJob
from portal.celery import app as celery_app

log = logging.getLogger(__name__)
RUN_JOB = "training.run_job"
SWEEP_ADVANCE = "training.sweep_advance"


def job_enqueue(job: TrainingJob) -> None:
    """Queue `training.run_job` for `job` on its queue after commit (the worker must find the row).

    Job priority 9 is the most urgent; kombu's Redis transport serves priority 0 first. The task
    id is the job's, so a cancel can revoke the message.
    """
    enqueue(RUN_JOB, args=[job.pk], queue=job.queue, priority=9 - job.priority, task_id=job.celery_task_id)


def sweep_advance_enqueue(sweep_id: int) -> None:
    """Queue `training.sweep_advance` after commit (a child job ended, or the sweep started)."""
    enqueue(SWEEP_ADVANCE, args=[sweep_id], queue="default")


def task_revoke(task_id: str) -> None:
    """Revoke a queued job's message after commit; best effort (the task checks the row first)."""

    def revoke() -> None:
        try:
            celery_app.control.revoke(task_id)
        except Exception:  # the task also checks the row first, so a missed revoke is harmless
            log.warning("revoke of task %s failed", task_id)

    transaction.on_commit(revoke)
