"""Celery tasks: load by id, call the runner/services. State lives in the job rows, not in Celery."""

from __future__ import annotations

from celery import shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, name="training.run_job")
def run_job(self, job_id: int) -> str:
    """A delivery that finds another one running the job (its lease is live) leaves the job alone and
    looks again when that lease would expire: by then the job has ended (skipped), or is still running
    (look again later), or its holder died and the lease ran out (resume)."""
    from apps.training.runner import DUPLICATE, execute, lease_retry_in_s

    result = execute(int(job_id), hostname=self.request.hostname or "")
    if result == DUPLICATE and not (self.request.is_eager or self.request.called_directly):
        raise self.retry(countdown=lease_retry_in_s(int(job_id)))
    return result


@shared_task(name="training.sweep_advance", acks_late=True)
def sweep_advance(sweep_id: int) -> int:
    from apps.training.sweeps import sweep_advance as advance

    return advance(sweep_id=int(sweep_id))
