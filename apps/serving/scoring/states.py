"""The scoring job state machine, like training jobs': guarded transitions on a locked row, the
live message after commit, and the ETA a page shows.

    queued -> running | failed | cancelled
    running -> succeeded | failed | cancelled | retrying (its worker was lost; recovery re-sent it)
    retrying -> running | failed | cancelled
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.core import vault
from apps.core.dispatch import enqueue
from apps.core.errors import Conflict
from apps.core.models import VaultBlob
from apps.core.realtime import broadcast, group_name
from apps.serving.models import ScoringJob

State = ScoringJob.State
SCORE_TASK = "serving.score"
TRANSITIONS = {
    State.QUEUED: {State.RUNNING, State.FAILED, State.CANCELLED},
    State.RUNNING: {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.RETRYING},
    State.RETRYING: {State.RUNNING, State.FAILED, State.CANCELLED},
}


def scoring_transition(*, job: ScoringJob, to: str, **fields) -> ScoringJob:
    """Move the job along the state machine inside the caller's transaction (the row is locked
    here); a final state drops the finished parts. `Conflict` when the move is not allowed."""
    current = ScoringJob.objects.select_for_update().values_list("state", flat=True).get(pk=job.pk)
    if to != current and to not in TRANSITIONS.get(current, set()):
        raise Conflict(f"A {current} scoring job cannot become {to}.")
    job.state = to
    for name, value in fields.items():
        setattr(job, name, value)
    update = {"state", "updated_at", *fields}
    if to == State.RUNNING and job.started_at is None:
        job.started_at = timezone.now()
        update.add("started_at")
    if to in ScoringJob.TERMINAL:
        job.finished_at = timezone.now()
        update.add("finished_at")
        if job.parts:
            parts_delete(job.parts)
            job.parts = []
            update.add("parts")
    job.save(update_fields=sorted(update))
    scoring_publish(job)
    return job


def parts_delete(parts: list[dict]) -> None:
    """Delete the part blobs (rows now, ciphertext after commit): a final job keeps none of them."""
    for blob in VaultBlob.objects.filter(pk__in=[p["blob"] for p in parts]):
        vault.blob_delete(blob)


def scoring_enqueue(job: ScoringJob) -> None:
    """Send `serving.score` for the job on its queue after commit, under the job's task id."""
    enqueue(SCORE_TASK, args=[job.pk], queue=job.queue, task_id=job.celery_task_id)


def eta_s(job: ScoringJob) -> float | None:
    """Seconds left at the pace so far (None before the first part or once the job has ended)."""
    if job.state != State.RUNNING or not job.started_at or not 0 < job.progress < 1:
        return None
    elapsed = (timezone.now() - job.started_at).total_seconds()
    return round(elapsed * (1 - job.progress) / job.progress, 1)


def scoring_message(job: ScoringJob) -> dict[str, Any]:
    """The `/ws/scoringjob/{id}/` message (shared/API.md: kind, state, progress, ...)."""
    return {
        "type": "scoringjob",
        "job": job.pk,
        "state": job.state,
        "progress": round(job.progress, 4),
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "eta_s": eta_s(job),
        "error": job.error[:500],
    }


def scoring_publish(job: ScoringJob) -> None:
    broadcast(group_name("scoringjob", job.pk), scoring_message(job))
