from __future__ import annotations

from celery import shared_task


@shared_task(name="features.materialize")
def materialize(job_id: int) -> dict:
    from apps.features.services import materialize_run

    if not isinstance(job_id, int):
        raise ValueError("materialize takes a MaterializationJob id")
    job = materialize_run(job_id=job_id)
    return {"job": job.pk, "state": job.state, "keys_written": job.keys_written}
