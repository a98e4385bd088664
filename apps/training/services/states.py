"""The job state machine: guarded transitions mirrored in the run's status, and the live message.

Everything that changes a job's state (launch, cancel, the worker) goes through `job_transition`;
the live message and a sweep's next step leave only after the transaction commits.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.services import token_revoke
from apps.core.errors import Conflict
from apps.core.realtime import broadcast, group_name
from apps.experiments.models import Run
from apps.experiments.services import run_set_status
from apps.training.models import TrainingJob
from apps.training.services.dispatch import sweep_advance_enqueue

State = TrainingJob.State
TRANSITIONS = {
    State.QUEUED: {State.RUNNING, State.FAILED, State.CANCELLED},
    State.RUNNING: {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.RETRYING},
    State.RETRYING: {State.RUNNING, State.FAILED, State.CANCELLED},
}
RUN_STATUS = {
    State.RUNNING: Run.Status.RUNNING,
    State.SUCCEEDED: Run.Status.FINISHED,
    State.FAILED: Run.Status.FAILED,
    State.CANCELLED: Run.Status.KILLED,
}


def job_transition(*, job: TrainingJob, to: str, **fields) -> TrainingJob:
    """Move the job along the state machine (inside the caller's transaction; the row is locked
    here) and mirror the run's status as the job's owner, whose run it is. `Conflict` when the
    move is not allowed from the current state."""
    current = TrainingJob.objects.select_for_update().values_list("state", flat=True).get(pk=job.pk)
    if to != current and to not in TRANSITIONS.get(current, set()):
        raise Conflict(f"A {current} job cannot become {to}.")
    now = timezone.now()
    job.state = to
    for name, value in fields.items():
        setattr(job, name, value)
    update = ["state", "updated_at", *fields]
    if to == State.RUNNING and job.started_at is None:
        job.started_at = now
        update.append("started_at")
    if to in TrainingJob.TERMINAL:
        job.finished_at = now
        job.eta_s = 0.0 if to == State.SUCCEEDED else None
        update += ["finished_at", "eta_s"]
    job.save(update_fields=sorted(set(update)))
    if to in TrainingJob.TERMINAL and job.api_token_id:
        _revoke_job_token(job)
    _mirror_run_status(job, RUN_STATUS.get(to))
    job_publish(job)
    if to in TrainingJob.TERMINAL and job.sweep_id:
        sweep_advance_enqueue(job.sweep_id)
    return job


def _revoke_job_token(job: TrainingJob) -> None:
    """A script job's token stops working once the job has ended, however it ended (a cancel with
    its worker gone, the reconciler failing it, the worker itself)."""
    token = ApiToken.objects.filter(pk=job.api_token_id, revoked_at__isnull=True).first()
    if token is not None:
        token_revoke(token=token, actor=job.owner)


def _mirror_run_status(job: TrainingJob, status: str | None) -> None:
    if status is None or not job.run_id:
        return
    run = job.run
    run.refresh_from_db(fields=["status"])  # the run's own row decides (it may have been killed)
    if run.status != status and not run.is_terminal:
        run_set_status(run=run, actor=job.owner, status=status)


def job_message(job: TrainingJob) -> dict[str, Any]:
    """The `/ws/training/jobs/{id}/` message (shared/API.md), also the job page's first state."""
    return {
        "type": "job",
        "job": job.pk,
        "state": job.state,
        "progress": round(job.progress, 4),
        "eta_s": None if job.eta_s is None else round(job.eta_s, 1),
        "epochs_completed": job.epochs_completed,
        "worker": job.worker,
        "error": job.error[:500],
        "attempts": job.attempts,
        "started_at": job.started_at.isoformat() if job.started_at else None,
    }


def job_publish(job: TrainingJob) -> None:
    """Send the job's live message to its sockets once the current transaction commits."""
    broadcast(group_name("trainingjob", job.pk), job_message(job))
