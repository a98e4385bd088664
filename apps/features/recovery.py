"""Materialization jobs survive restarts (the contract is in apps/core/recovery.py).

The core runs `recover()` at start-up and every minute. It finds the jobs whose Celery message or
worker is gone, judged from the job row alone (the database is the source of truth; a broker that
lost its queue, or a worker killed mid-run, leaves no other trace):

- queued, and its task was last sent more than QUEUED_STALE_S ago: sent again. A duplicate of a
  message that was only slow is harmless: the first delivery claims the job, the other finds it
  claimed (apps/features/materialization.py).
- running, and its worker's heartbeat (written at every chunk) is older than RUNNING_STALE_S:
  put back to queued and sent again; the range is copied again from the start (materialization is
  idempotent per range). A run that was asked to cancel ends as cancelled instead, and a job whose
  worker was lost MAX_ATTEMPTS times ends as failed, so every job reaches a final state.

Each change is one conditional UPDATE (state, attempt and the stale time it was judged on), so two
recoverers running at once act on a job exactly once, and each adds a line to the job's log.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.realtime import broadcast, group_name
from apps.features.materialization import dispatch, job_message, with_log
from apps.features.models import MaterializationJob

State = MaterializationJob.State
QUEUED_STALE_S = 300  # a message not picked up in 5 minutes is presumed lost; a duplicate costs nothing
RUNNING_STALE_S = 120  # heartbeats come every chunk of 1,000 keys, i.e. within seconds
MAX_ATTEMPTS = 3  # workers lost on the same job before it is given up as failed


def recover() -> dict:
    """Re-dispatch lost queued jobs, restart (or end) running jobs whose worker is gone; counts."""
    now = timezone.now()
    report = {"requeued": 0, "restarted": 0, "cancelled": 0, "failed": 0}
    queued = (
        MaterializationJob.objects.filter(state=State.QUEUED)
        .annotate(sent=Coalesce("dispatched_at", "created_at"))
        .filter(sent__lt=now - timedelta(seconds=QUEUED_STALE_S))
    )
    for job in queued.order_by("pk"):
        report["requeued"] += _requeue(job, now)
    running = (
        MaterializationJob.objects.filter(state=State.RUNNING)
        .annotate(seen=Coalesce("heartbeat_at", "started_at", "created_at"))
        .filter(seen__lt=now - timedelta(seconds=RUNNING_STALE_S))
    )
    for job in running.select_related("view").order_by("pk"):
        outcome = _recover_running(job, now)
        if outcome:
            report[outcome] += 1
    return report


def _unchanged(job: MaterializationJob):
    """The job's row only if nobody changed it since it was judged lost."""
    same = Q(pk=job.pk, state=job.state, attempt=job.attempt)
    if job.state == State.QUEUED:
        return MaterializationJob.objects.filter(same, dispatched_at=job.dispatched_at)
    return MaterializationJob.objects.filter(same, heartbeat_at=job.heartbeat_at)


@transaction.atomic
def _requeue(job: MaterializationJob, now) -> int:
    waited = int((now - job.sent).total_seconds())
    line = f"re-dispatched by recovery: no worker had started it {waited} s after its task was sent"
    if not _unchanged(job).update(dispatched_at=now, log=with_log(line)):
        return 0
    job.dispatched_at = now
    dispatch(job)
    return 1


@transaction.atomic
def _recover_running(job: MaterializationJob, now) -> str | None:
    silent = int((now - job.seen).total_seconds())
    lost = f"its worker went silent {silent} s ago (attempt {job.attempt})"
    if job.cancel_requested:
        outcome, line = "cancelled", f"cancelled by recovery: {lost} after a cancel was asked"
        changes = {"state": State.CANCELLED, "finished_at": now}
    elif job.attempt >= MAX_ATTEMPTS:
        outcome, line = "failed", f"failed by recovery: {lost}; given up after {job.attempt} lost workers"
        error = f"The worker was lost {job.attempt} times while running this job; materialize the range again."
        changes = {"state": State.FAILED, "finished_at": now, "error": error}
    else:
        outcome, line = "restarted", f"restarted by recovery: {lost}; the range is copied again"
        changes = {"state": State.QUEUED, "dispatched_at": now, "heartbeat_at": None, "progress": 0.0}
    if not _unchanged(job).update(log=with_log(line), **changes):
        return None
    job.refresh_from_db()
    if job.state == State.QUEUED:
        dispatch(job)
    broadcast(group_name("featureview", job.view_id), job_message(job))
    return outcome
