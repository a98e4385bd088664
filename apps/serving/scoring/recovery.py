"""Batch-scoring jobs survive restarts (the contract is in apps/core/recovery.py).

Judged from the job row and its Redis lease (apps/serving/scoring/lease.py):

- **queued**, untouched for QUEUED_STALE_S, its message (task id) in none of its queue's Redis
  lists nor in the `unacked` hash, and no delivery holds its lease: the broker lost it, so it is
  sent again under the same task id. (A job merely waiting for a worker keeps its one message.)
  A duplicate is harmless anyway: the second delivery finds the lease held or the job ended.
- **running or retrying**, untouched for longer than the lease TTL, and no delivery holds its
  lease: its worker was killed. A cancel requested meanwhile makes it cancelled; a job whose
  worker was lost MAX_ATTEMPTS times fails; otherwise it becomes `retrying` under a new task id
  (any older message is stale from now on) and resumes after its last finished part.

Each decision is re-checked with the row locked (state and `updated_at` as judged), so two
recoverers running at once act on a job exactly once. Safe to run at any time and twice in a row.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.core import workers
from apps.core.audit import acting_as
from apps.serving.models import ScoringJob
from apps.serving.scoring.lease import lease_held, lease_ttl_s
from apps.serving.scoring.states import State, scoring_enqueue, scoring_transition

log = logging.getLogger(__name__)
QUEUED_STALE_S = 300
MAX_ATTEMPTS = 3
# kombu's Redis transport: a queue is a list per priority level (as apps.core.workers.queue_depths
# reads them), and messages a worker has taken but not acknowledged sit in the `unacked` hash.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
UNACKED = "unacked"


def recover() -> dict:
    """One pass over the active scoring jobs; counts for the log."""
    now = timezone.now()
    report = {"requeued": 0, "resumed": 0, "cancelled": 0, "failed": 0}
    queued_before = now - timedelta(seconds=QUEUED_STALE_S)
    running_before = now - timedelta(seconds=lease_ttl_s())
    active = ScoringJob.objects.filter(state__in=ScoringJob.ACTIVE).select_related("owner").order_by("pk")
    for job in active:
        stale_before = queued_before if job.state == State.QUEUED else running_before
        if job.updated_at >= stale_before or lease_held(job) is not False:
            continue
        if job.state == State.QUEUED and _in_broker(job) is not False:
            continue
        outcome = _recover_one(job)
        if outcome:
            report[outcome] += 1
    return report


def _in_broker(job: ScoringJob) -> bool | None:
    """Whether the job's message waits in its queue or is held by a worker; None if Redis cannot say."""
    try:
        client = workers.redis_client()
        pipe = client.pipeline()
        for suffix in PRIORITY_SUFFIXES:
            pipe.lrange(job.queue + suffix, 0, -1)
        pipe.hvals(UNACKED)
        found = pipe.execute()
    except Exception:
        log.warning("could not look for scoring job %s's message in the broker", job.pk)
        return None
    wanted = job.celery_task_id.encode()
    return any(wanted in raw for batch in found for raw in batch)


def _recover_one(job: ScoringJob) -> str:
    with acting_as(job.owner), transaction.atomic():
        locked = ScoringJob.objects.select_for_update().get(pk=job.pk)
        if locked.state != job.state or locked.updated_at != job.updated_at or lease_held(locked) is not False:
            return ""
        if locked.state == State.QUEUED:
            locked.save(update_fields=["updated_at"])
            scoring_enqueue(locked)
            outcome = "requeued"
        elif locked.cancel_requested:
            scoring_transition(
                job=locked, to=State.CANCELLED, error="Cancelled; its worker was gone, so it stopped at once."
            )
            outcome = "cancelled"
        elif locked.attempts >= MAX_ATTEMPTS:
            scoring_transition(
                job=locked, to=State.FAILED,
                error=f"Its worker was lost {locked.attempts} times while scoring; it was given up. Score the input again.",
            )  # fmt: skip
            outcome = "failed"
        else:
            scoring_transition(job=locked, to=State.RETRYING, celery_task_id=str(uuid.uuid4()))
            scoring_enqueue(locked)
            outcome = "resumed"
    log.warning("scoring job %s %s by recovery (after row %s)", job.pk, outcome, locked.rows_done)
    return outcome
