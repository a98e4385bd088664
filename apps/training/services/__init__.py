"""Writes for training, split by sub-domain; import the public names from here.

- `jobs`: launch (validation, permissions, residency, queue routing, team sharing), cancel, and
  moving a queued GPU job to a CPU worker.
- `states`: the guarded job state machine mirrored in the run, and the live job message.
- `sweeps`: create, cancel and advance hyperparameter sweeps.
- `routing`, `costs`, `flags`: queue choice, cost accounting, the cancel flag's Redis mirror and
  the delivery lease.
- `dispatch`: the one place Celery tasks are sent (by name, after commit); services never import tasks.
"""

from apps.training.services.costs import cost_of, gpu_hint
from apps.training.services.dispatch import job_enqueue, sweep_advance_enqueue, task_revoke
from apps.training.services.flags import CANCEL_KEY, LEASE_KEY, cancel_flag_set, cancel_requested, lease_held
from apps.training.services.jobs import (
    MAX_RUNTIME_LIMIT_S,
    job_cancel,
    job_launch,
    job_move_to_cpu,
    share_existing_with_team,
    trial_launch,
)
from apps.training.services.routing import resolve_route
from apps.training.services.states import job_message, job_publish, job_transition
from apps.training.services.sweeps import sweep_advance, sweep_cancel, sweep_create

__all__ = [
    "CANCEL_KEY",
    "LEASE_KEY",
    "MAX_RUNTIME_LIMIT_S",
    "cancel_flag_set",
    "cancel_requested",
    "cost_of",
    "gpu_hint",
    "job_cancel",
    "job_enqueue",
    "job_launch",
    "job_message",
    "job_move_to_cpu",
    "job_publish",
    "job_transition",
    "lease_held",
    "resolve_route",
    "share_existing_with_team",
    "sweep_advance",
    "sweep_advance_enqueue",
    "sweep_cancel",
    "sweep_create",
    "task_revoke",
    "trial_launch",
]
