"""Celery tasks: load by id, call the runner or a service. State lives in the job rows, not in Celery.

Services send these by name (`apps.training.services.dispatch`), after commit; nothing imports this
module but Celery's autodiscovery.
"""

from __future__ import annotations

from celery import shared_task

from apps.training import runner
from apps.training.services import sweep_advance as advance


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, name="training.run_job")
def run_job(self, job_id: int) -> str:
    """A delivery that finds another one running the job (its lease is live) leaves the job alone and
    looks again when that lease would expire: by then the job has ended (skipped), or is still running
    (look again later), or its holder died and the lease ran out (resume). A message that is no
    longer the job's current one (re-sent by recovery or "run on CPU instead") is `stale`."""
    task_id = None if self.request.called_directly else self.request.id
    result = runner.execute(int(job_id), hostname=self.request.hostname or "", task_id=task_id)
    if result == runner.DUPLICATE and not (self.request.is_eager or self.request.called_directly):
        raise self.retry(countdown=runner.lease_retry_in_s(int(job_id)))
    return result


@shared_task(name="training.sweep_advance", acks_late=True)
def sweep_advance(sweep_id: int) -> dict:
    """Launch the sweep's next trials (as its owner) or close it; see `services.sweep_advance`."""
    return {"sweep": int(sweep_id), "launched": advance(sweep_id=int(sweep_id))}
