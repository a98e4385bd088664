"""The cancel flag's Redis mirror: set by `job_cancel`, read by the worker between steps.

The job row (`cancel_requested`) is the source of truth; Redis makes the worker's frequent check
one EXISTS instead of a database query.
"""

from __future__ import annotations

import logging

from apps.core import workers
from apps.training.models import TrainingJob

log = logging.getLogger(__name__)
CANCEL_KEY = "portal:training:cancel:{}"
CANCEL_FLAG_TTL_S = 7 * 24 * 3600


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
