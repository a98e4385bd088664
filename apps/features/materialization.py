"""Materialization jobs: queue, run, cancel (re-exported by `apps.features.services`).

A job is a copy of a view's [start, end) rows from offline to online. The database row is the truth
about it, so a job survives a restart of the broker or the worker (apps/features/recovery.py):

- Exactly once. A delivery of `features.materialize` first *claims* the job with one conditional
  UPDATE (queued -> running, attempt + 1). A duplicate or stale delivery finds it claimed and leaves
  it alone. Every later write of the run is conditional on its own attempt, so a worker that was
  given up for lost (and whose job was restarted) can no longer change the row.
- Idempotent per range. The online store keeps, per key, the row with the newest event time and
  never replaces a newer one, so running a range again (after a lost worker) ends in the same state.
- Always final. A failure is recorded as `failed`; a cancel ends a queued job at once and a running
  one at its next chunk (or at recovery, when its worker is gone) as `cancelled`.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from apps.core.dispatch import enqueue
from apps.core.errors import Conflict
from apps.core.permissions import require
from apps.core.queues import queue_name
from apps.core.realtime import broadcast, group_name, send_now
from apps.features import offline, online
from apps.features.models import FeatureView, FeatureViewVersion, MaterializationJob

State = MaterializationJob.State
TASK = "features.materialize"


class _Stopped(Exception):
    """The run lost its claim (restarted elsewhere) or was asked to cancel."""


def job_message(job: MaterializationJob) -> dict:
    """The socket message of a job's state (the view page's jobs table)."""
    return {
        "type": "materialization", "job": job.pk, "state": job.state, "progress": round(job.progress, 4),
        "rows_read": job.rows_read, "keys_written": job.keys_written, "error": job.error,
    }  # fmt: skip


def dispatch(job: MaterializationJob) -> None:
    """Send the job's task after commit, on the job's queue."""
    enqueue(TASK, args=[job.pk], queue=job.queue)


def log_line(text: str) -> str:
    return f"{timezone.now().isoformat(timespec='seconds')} {text}\n"


def with_log(text: str) -> Concat:
    """An UPDATE value that appends one line to the job's log."""
    return Concat(F("log"), Value(log_line(text)), output_field=TextField())


@transaction.atomic
def feature_view_materialize(*, view: FeatureView, actor, start, end) -> MaterializationJob:
    """Queue a copy of the view's [start, end) rows from offline to online, on its region's queue."""
    require(actor, "change", view)
    if start is None or end is None or start >= end:
        raise ValidationError({"end": ["Give a time range with start before end."]})
    queue = "default" if view.region == "default" else queue_name("cpu", view.region)
    job = MaterializationJob.objects.create(
        view=view, version=view.version, requested_by=actor, start=start, end=end, queue=queue,
        dispatched_at=timezone.now(),
    )  # fmt: skip
    dispatch(job)
    broadcast(group_name("featureview", view.pk), job_message(job))
    return job


@transaction.atomic
def materialization_cancel(*, job: MaterializationJob, actor) -> MaterializationJob:
    """Cancel a job: a queued one ends at once; a running one stops at its next chunk (or is ended by
    recovery if its worker is gone). Owner and editors of the view; 409 once the job has finished."""
    require(actor, "change", job.view)
    job = MaterializationJob.objects.select_for_update().select_related("view", "requested_by").get(pk=job.pk)
    if job.state in MaterializationJob.FINAL:
        raise Conflict(f"Materialization job {job.pk} has already {job.state}; there is nothing to cancel.")
    who = getattr(actor, "username", "system")
    if job.state == State.QUEUED:
        job.state, job.finished_at = State.CANCELLED, timezone.now()
        job.log += log_line(f"cancelled by {who} before it started")
    else:
        job.cancel_requested = True
        job.log += log_line(f"cancel requested by {who}; the worker stops at its next chunk")
    job.save(update_fields=["state", "finished_at", "cancel_requested", "log"])
    broadcast(group_name("featureview", job.view_id), job_message(job))
    return job


def _claim(job_id: int) -> int | None:
    """Queued -> running in one conditional UPDATE; the attempt this delivery owns, or None."""
    now = timezone.now()
    claimed = MaterializationJob.objects.filter(pk=job_id, state=State.QUEUED).update(
        state=State.RUNNING, attempt=F("attempt") + 1, started_at=now, heartbeat_at=now, progress=0.0, error=""
    )
    if not claimed:
        return None
    return MaterializationJob.objects.values_list("attempt", flat=True).get(pk=job_id)


def _mine(job: MaterializationJob, attempt: int):
    """The job's row while this run still owns it: running, this attempt, no cancel asked."""
    return MaterializationJob.objects.filter(pk=job.pk, state=State.RUNNING, attempt=attempt)


def materialization_run(*, job_id: int) -> MaterializationJob:
    """Run a queued job once (the `features.materialize` task calls this; the job was authorised when
    it was queued, and residency is checked again here). A delivery for a job that is running,
    finished or cancelled returns it unchanged."""
    attempt = _claim(job_id)
    job = MaterializationJob.objects.select_related("view__entity", "requested_by").get(pk=job_id)
    if attempt is None:
        return job
    group = group_name("featureview", job.view_id)
    send_now(group, job_message(job))

    def heartbeat(**fields) -> None:
        if not _mine(job, attempt).filter(cancel_requested=False).update(heartbeat_at=timezone.now(), **fields):
            raise _Stopped

    try:
        _copy(job, heartbeat)
    except _Stopped:
        return _stop(job, attempt, group)
    except Exception as exc:  # the job row records every failure; the worker stays up
        state, job.error = State.FAILED, str(exc)[:2000]
    else:
        state, job.progress = State.SUCCEEDED, 1.0
    job.state, job.finished_at = state, timezone.now()
    fields = ("state", "progress", "rows_read", "keys_written", "error", "finished_at")
    if not _mine(job, attempt).update(**{f: getattr(job, f) for f in fields}):
        job.refresh_from_db()  # restarted elsewhere meanwhile: that run owns the row now
        return job
    if state == State.SUCCEEDED:
        FeatureView.objects.filter(pk=job.view_id).update(last_materialized_at=job.finished_at)
    send_now(group, job_message(job))
    return job


def _copy(job: MaterializationJob, heartbeat) -> None:
    view = job.view
    offline.check_residency(view.region, actor=job.requested_by, obj=view, action="materialize")
    heartbeat()
    table = offline.read_view(view, version=job.version, start=job.start, end=job.end)
    job.rows_read = table.num_rows
    heartbeat(rows_read=job.rows_read)
    features = FeatureViewVersion.objects.get(view=view, version=job.version).features
    group = group_name("featureview", view.pk)

    def progress(done, total):
        job.progress = done / total
        heartbeat(progress=job.progress, rows_read=job.rows_read)
        send_now(group, job_message(job))

    job.keys_written = online.write_latest(
        view_id=view.pk, version=job.version, table=table, key_names=view.entity.key_names,
        features=features, progress=progress,
    )  # fmt: skip


def _stop(job: MaterializationJob, attempt: int, group: str) -> MaterializationJob:
    """End a run that stopped early: cancelled if a cancel was asked, else (restarted elsewhere) untouched."""
    now = timezone.now()
    done = (
        _mine(job, attempt)
        .filter(cancel_requested=True)
        .update(state=State.CANCELLED, finished_at=now, log=with_log("cancelled while running"))
    )
    job.refresh_from_db()
    if done:
        send_now(group, job_message(job))
    return job
