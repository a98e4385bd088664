"""The Celery task of batch scoring, sent by name (`serving.score`) after commit by the services;
nothing imports this module but `apps.serving.tasks` (so the worker registers it)."""

from __future__ import annotations

from celery import shared_task

from apps.serving.scoring import runner
from apps.serving.scoring.lease import lease_ttl_s


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None, name="serving.score")
def score(self, job_id: int) -> dict:
    """Run or resume the job. A delivery that finds another one holding the job's lease looks
    again once that lease would have expired: the job has ended by then (skipped), or its holder
    died (it resumes from the last part)."""
    task_id = None if self.request.called_directly else self.request.id
    result = runner.execute(int(job_id), hostname=self.request.hostname or "", task_id=task_id)
    if result == runner.DUPLICATE and not (self.request.is_eager or self.request.called_directly):
        raise self.retry(countdown=lease_ttl_s())
    return {"job": int(job_id), "result": result}
