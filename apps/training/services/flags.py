"""The job's Redis keys: the cancel flag's mirror (set by `job_cancel`, read by the worker between
steps) and the delivery lease (taken by the runner, read by cancel and recovery).

The job row (`cancel_requested`) is the source of truth; Redis makes the worker's frequent check
one EXISTS instead of a database query. The lease says whether a delivery is alive right now: its
holder refreshes it every TTL/3 (apps/training/runner.py `JobLease`).
"""

from __future__ import annotations

import logging

from apps.core import workers
from apps.training.models import TrainingJob

log = logging.getLogger(__name__)
CANCEL_KEY = "portal:training:cancel:{}"
CANCEL_FLAG_TTL_S = 7 * 24 * 3600
LEASE_KEY = "portal:training:lease:{}"


def lease_key(job: TrainingJob) -> str:
    """The lease key of the job's current delivery (its task id; unique even across databases)."""
    return LEASE_KEY.format(job.celery_task_id or f"job-{job.pk}")


def lease_held(job: TrainingJob) -> bool | None:
    """Whether a live delivery holds the job's lease; None when Redis cannot be asked."""
    try:
        return bool(workers.redis_client().exists(lease_key(job)))
    except Exception:
        log.warning("could not read the lease of job %s from Redis", job.pk)
        return None


def cancel_flag_set(job: TrainingJob) -> None:
    """Mirror the cancel flag in Redis, keyed by the job's task id (unique even across databases)."""
    try:
        workers.redis_client().set(CANCEL_KEY.format(job.celery_task_id), "1", ex=CANCEL_FLAG_TTL_S)
    except Exception:  # the row is the source of truth; the worker falls back to it
        log.warning("could not mirror the cancel flag of job %s to Redis", job.pk)


def cancel_requested(job: TrainingJob) -> bool:
    """Cheap check for the worker: the Redis mirror, else the row."""
    try:
        return bool(workers.redis_client().exists(CANCEL_KEY.format(job.celery_task_id)))
    except Exception:
        return TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists()
