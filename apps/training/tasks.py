"""Celery tasks: load by id, call the runner/services. State lives in the job rows, not in Celery."""

from __future__ import annotations

from celery import shared_task


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, name="training.run_job")
def run_job(self, job_id: int) -> str:
    from apps.training.runner import execute

    return execute(int(job_id), hostname=self.request.hostname or "")


@shared_task(name="training.sweep_advance", acks_late=True)
def sweep_advance(sweep_id: int) -> int:
    from apps.training.sweeps import sweep_advance as advance

    return advance(sweep_id=int(sweep_id))
