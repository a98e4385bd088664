"""Training's recoverer (see apps/core/recovery.py): jobs whose Celery message or worker is gone.

The job rows are the source of truth; Redis (broker and leases) only tells what is alive now, and
it may have lost everything (a restart of an embedded Redis without its append-only file). Each
pass, for every active job:

- **Queued jobs past their `max_queue_s`** fail with the reason ("No GPU worker took this job
  within 30 min; ...") and their message is revoked. Nothing else times a queued job out.
- **A running (or retrying) job is gone** when no delivery holds its lease
  (`portal:training:lease:<task id>`). A live delivery refreshes its lease every TTL/3 and takes it
  back within TTL/3 if Redis lost it (apps/training/runner.py `JobLease`), so a lease missing at
  two observations at least TTL/2 apart means the delivery is dead: its worker was killed, or
  Ctrl-C'd with the message lost. (A worker that merely restarted under the same name proves
  nothing, which is why the worker heartbeat is not the test.) A cancel requested meanwhile makes
  it cancelled; otherwise it is resumed from its last checkpoint.
- **A queued job is gone** when its message (its task id) is in none of its queue's Redis lists
  (kombu's Redis transport keeps a queue as lists named after it, one per priority level) nor in
  the `unacked` hash (messages a worker has prefetched or is running), and no delivery holds its
  lease, again at two observations at least QUEUED_GRACE_S apart: between a worker's BRPOP and
  its write to `unacked` a message is briefly in neither, and a job just committed may not have
  been sent yet. It is queued again.

The first observation is a Redis key with its time (`portal:training:recovery:<task id>`, removed
as soon as a pass sees the job alive); the beat runs a pass every 60 s, so a lost job is taken up
within about two minutes of a restart (`manage.py recover_jobs` runs one pass by hand).

Exactly once: each decision is re-checked with the job's row locked, and a re-dispatch gives the
job a new task id before sending the new message. The runner runs a job only for the message
whose id the row holds (an old one that surfaces later, e.g. restored from `unacked` after the
visibility timeout, is `stale`), only under its lease, and never once the job is final; a resumed
run first drops its metric points after the checkpoint's step, so it ends with one point per step.
Safe to run at any time and twice in a row (a second pass finds the new message or lease).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core import queues, workers
from apps.core.audit import acting_as
from apps.core.format import duration
from apps.experiments.services import run_append_log
from apps.training.models import TrainingJob
from apps.training.services import job_enqueue, job_transition, lease_held, task_revoke

log = logging.getLogger(__name__)
State = TrainingJob.State
SUSPECT_KEY = "portal:training:recovery:{}"
QUEUED_GRACE_S = 5.0
UNACKED = "unacked"  # kombu's Redis transport: delivery tag -> [message, exchange, routing key]
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # as apps.core.workers.queue_depths


def running_grace_s() -> float:
    """How long a running job's lease must stay missing: half the lease TTL (refreshes come every third)."""
    return settings.TRAINING_LEASE_TTL_S / 2


def recover() -> dict:
    """One pass over the active jobs; returns counts for the log (see the module docstring)."""
    report = {"timed_out": 0, "requeued": 0, "resumed": 0, "cancelled": 0, "suspect": 0}
    jobs = list(TrainingJob.objects.filter(state__in=TrainingJob.ACTIVE).select_related("owner", "run").order_by("pk"))
    queued = [j for j in jobs if j.state == State.QUEUED]
    for job in queued:
        if job.max_queue_s and timezone.now() - job.queued_at >= timedelta(seconds=job.max_queue_s):
            report["timed_out"] += _time_out(job)
    queued = [j for j in queued if j.state == State.QUEUED]
    in_broker = _messages_in_broker({j.queue for j in queued})
    for job in jobs:
        if job.state in TrainingJob.TERMINAL:
            continue
        if job.state == State.QUEUED:
            gone, grace = job.celery_task_id.encode() not in in_broker and lease_held(job) is False, QUEUED_GRACE_S
        else:
            gone, grace = lease_held(job) is False, running_grace_s()
        if not _confirmed(job, gone, grace):
            report["suspect"] += int(gone)
            continue
        outcome = _recover_one(job)
        if outcome:
            report[outcome] += 1
    return report


def _messages_in_broker(names: set[str]) -> bytes:
    """Every waiting or unacknowledged message of these queues, as one blob to search task ids in."""
    if not names:
        return b""
    client = workers.redis_client()
    pipe = client.pipeline()
    for name in sorted(names):
        for suffix in PRIORITY_SUFFIXES:
            pipe.lrange(name + suffix, 0, -1)
    pipe.hvals(UNACKED)
    return b"\n".join(raw for batch in pipe.execute() for raw in batch)


def _confirmed(job: TrainingJob, gone: bool, grace: float) -> bool:
    """True once `gone` was also seen at least `grace` seconds ago (and at every pass between)."""
    client = workers.redis_client()
    key = SUSPECT_KEY.format(job.celery_task_id)
    if not gone:
        client.delete(key)
        return False
    now = time.time()
    if client.set(key, repr(now), nx=True, ex=int(grace) + 180):
        return False
    first = client.get(key)
    try:
        return now - float(first) >= grace
    except (TypeError, ValueError):
        return False


def _recover_one(job: TrainingJob) -> str:
    """Re-check with the row locked, then cancel, resume or re-queue the job; '' when it is alive after all."""
    seen_task = job.celery_task_id
    with acting_as(job.owner), transaction.atomic():
        locked = TrainingJob.objects.select_for_update(of=("self",)).select_related("owner", "run").get(pk=job.pk)
        if (
            locked.celery_task_id != seen_task
            or locked.state in TrainingJob.TERMINAL
            or lease_held(locked) is not False
        ):
            return ""
        workers.redis_client().delete(SUSPECT_KEY.format(seen_task))
        if locked.state != State.QUEUED and locked.cancel_requested:
            job_transition(
                job=locked, to=State.CANCELLED, error="Cancelled; its worker was gone, so it stopped at once."
            )
            return "cancelled"
        if locked.state == State.QUEUED:
            outcome, line = "requeued", "Recovered after a restart: its message was lost, so it was queued again."
        elif locked.checkpoint_id:
            outcome, line = "resumed", f"Recovered after a restart: resuming from epoch {locked.checkpoint_epoch}."
        else:
            outcome, line = "resumed", "Recovered after a restart: starting again (no checkpoint had been written)."
        locked.celery_task_id = str(uuid.uuid4())  # any older message of this job is stale from now on
        locked.save(update_fields=["celery_task_id", "updated_at"])
        _log_line(locked, line)
        job_enqueue(locked)
    log.warning("training job %s %s (message %s replaced by %s)", job.pk, outcome, seen_task, locked.celery_task_id)
    return outcome


def _time_out(job: TrainingJob) -> int:
    """Fail a queued job that waited past its `max_queue_s`; 1 if it did, 0 if a worker took it meanwhile."""
    with acting_as(job.owner), transaction.atomic():
        locked = TrainingJob.objects.select_for_update(of=("self",)).select_related("owner", "run").get(pk=job.pk)
        if locked.state != State.QUEUED:
            return 0
        job_transition(job=locked, to=State.FAILED, error=queue_timeout_reason(locked))
        task_revoke(locked.celery_task_id)
        _log_line(locked, f"FAILED: {locked.error}")
    job.state = State.FAILED
    return 1


def queue_timeout_reason(job: TrainingJob) -> str:
    """Why a queued job failed: nobody took it in time, and what to do about it."""
    waited = duration(job.max_queue_s)
    if queues.split_queue(job.queue)[0] == "gpu":
        return (
            f"No GPU worker took this job within {waited}; start a worker for queue {job.queue}, or launch it "
            "again with CPU fallback allowed."
        )
    return f"No worker took this job within {waited}; start a worker for queue {job.queue} and launch it again."


def _log_line(job: TrainingJob, text: str) -> None:
    if not job.run_id:
        return
    try:
        with transaction.atomic():  # a savepoint: a failed log write leaves the recovery's transaction usable
            run_append_log(run=job.run, actor=job.owner, text=text + "\n")
    except Exception:  # the owner may have lost the experiment; the job's recovery must not depend on its log
        log.warning("job %s: could not write %r to its run log", job.pk, text, exc_info=True)
