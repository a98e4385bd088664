"""Writes for training jobs: launch (validation, permissions, residency, queue routing), cancel,
and the guarded state machine that mirrors the Celery task in the job row."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.core import queues, workers
from apps.core.errors import Conflict
from apps.core.audit import audit_event
from apps.core.permissions import can, codename, grant_owner, require, share
from apps.core.realtime import group_name, send_now
from apps.training.datasource import clean_data_spec
from apps.training.engine import templates as engine_templates
from apps.training.models import TrainingJob

log = logging.getLogger(__name__)
State = TrainingJob.State
TRANSITIONS = {
    State.QUEUED: {State.RUNNING, State.FAILED, State.CANCELLED},
    State.RUNNING: {State.SUCCEEDED, State.FAILED, State.CANCELLED, State.RETRYING},
    State.RETRYING: {State.RUNNING, State.FAILED, State.CANCELLED},
}
MAX_RUNTIME_LIMIT_S = 7 * 24 * 3600
CANCEL_KEY = "portal:training:cancel:{}"
LAUNCH_FIELDS = (
    "template", "params", "data", "resource_class", "region", "priority", "max_runtime_s", "seed",
    "allow_cpu_fallback", "experiment", "model_name", "team",
)  # fmt: skip


def template_list() -> list[dict[str, Any]]:
    return engine_templates.list_templates()


def _int_field(errors: dict, name: str, value: Any, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        errors[name] = [f"{name} must be a whole number."]
        return default
    try:
        number = int(value)
        if isinstance(value, float) and value != number:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        errors[name] = [f"{name} must be a whole number."]
        return default
    if not low <= number <= high:
        errors[name] = [f"{name} must be between {low} and {high}."]
    return number


def resolve_team(actor, value: Any):
    """The team named by `value` (a Team, an id, a slug or a name) if `actor` is a member, else a 400."""
    from apps.accounts.models import Team

    if value in (None, ""):
        return None
    mine = Team.objects.filter(group__user=actor)
    if isinstance(value, Team):
        team = mine.filter(pk=value.pk).first()
    elif isinstance(value, bool) or not isinstance(value, int | str):
        raise ValidationError({"team": ["team is the id, slug or name of a team you belong to."]})
    elif isinstance(value, int) or value.strip().isdigit():
        team = mine.filter(pk=int(value)).first()
    else:
        value = value.strip()
        team = mine.filter(slug=value).first() or mine.filter(name__iexact=value).first()
    if team is None:
        raise ValidationError({"team": [f"You are not a member of a team {value!s:.100}; give one of your teams."]})
    return team


def share_with_team(obj, *, team, actor) -> bool:
    """Let `team` view `obj` (never downgrading an editor share); audited. True when it shared."""
    from guardian.shortcuts import get_perms

    if team is None or codename(obj, "view") in get_perms(team.group, obj):
        return False
    share(obj, role="viewer", team=team)
    audit_event(actor=actor, event=f"{obj._meta.model_name}.share", obj=obj, data={"team": team.slug, "role": "viewer"})
    return True


def _experiment_for(actor, template: str, experiment_id: Any, team=None):
    """The experiment for a job's run: the given one, else the team's or the actor's training experiment.

    With a team, the run's experiment is shared with it (team experiments are shared on creation).
    """
    from apps.experiments import selectors as exp_selectors
    from apps.experiments.models import Experiment
    from apps.experiments.services import experiment_create

    if experiment_id not in (None, ""):
        if isinstance(experiment_id, bool) or not str(experiment_id).isdigit():
            raise ValidationError({"experiment": ["experiment is the id of an experiment."]})
        experiment = Experiment.objects.filter(pk=int(experiment_id)).first()
        if experiment is None or not can(actor, "view", experiment):
            raise ValidationError({"experiment": [f"No experiment {experiment_id} is visible to you."]})
        if not can(actor, "change", experiment):
            raise ValidationError({"experiment": ["You may view this experiment but not add runs to it."]})
        share_with_team(experiment, team=team, actor=actor)
        return experiment
    who = team.slug if team is not None else actor.username
    name = slugify(f"training-{who}-{template}")[:100].strip("-") or f"training-{actor.pk}"
    experiment = Experiment.objects.filter(name=name).first()
    if experiment is None:
        return experiment_create(
            name=name,
            actor=actor,
            description=f"Training jobs of {team.name if team is not None else actor.username}.",
            team=team,
        )
    if team is not None and not can(actor, "change", experiment):
        raise ValidationError({"team": [f"The team's experiment {name!r} does not accept your runs; "
                                        "pick an experiment you can add runs to."]})  # fmt: skip
    return exp_selectors.get_experiment(actor, experiment.pk, "change")


def _check_model_name(actor, name: Any, default: str) -> str:
    from apps.catalog.models import RegisteredModel

    name = default if name in (None, "") else name
    if not isinstance(name, str) or not name or slugify(name) != name or len(name) > 100:
        raise ValidationError({"model_name": ["Use 1-100 lowercase letters, digits and hyphens, e.g. churn-mlp."]})
    existing = RegisteredModel.objects.filter(name=name).first()
    if existing is not None and not can(actor, "change", existing):
        raise ValidationError({"model_name": [f"A model called {name!r} exists and you cannot add versions to it."]})
    return name


def resolve_route(*, resource_class: str, region: str | None, data_region: str | None, allow_cpu_fallback: bool):
    """(queue, region, device, warning): residency first, then GPU availability. Never silent."""
    region = region or None
    if data_region and data_region != "default":
        if region not in (None, data_region):
            raise ValidationError(
                {"region": [f"The training data is pinned to region {data_region!r}; a job on it cannot run in "
                            f"{region!r}. Launch it in region {data_region!r} (or leave region empty)."]}
            )  # fmt: skip
        region = data_region
    try:
        queue = queues.queue_name(resource_class, region)
    except ValueError as exc:
        field = "resource_class" if resource_class not in queues.RESOURCE_CLASSES else "region"
        raise ValidationError({field: [str(exc)]}) from None
    warning, device = "", "cpu" if resource_class == "cpu" else "cuda"
    if resource_class == "gpu":
        try:
            online = workers.workers_by_queue().get(queue, 0)
        except Exception:  # Redis unreachable: we cannot know, so do not claim either way
            online = None
        if not online:
            if allow_cpu_fallback:
                queue, device = queues.queue_name("cpu", region), "cpu"
                warning = (
                    f"No GPU worker is online for queue gpu{'.' + region if region else ''}; this job runs on a CPU "
                    "worker because you allowed CPU fallback."
                )
            else:
                warning = (
                    f"No GPU worker is online for queue {queue}; the job waits in the queue until one comes online "
                    "(tick 'allow CPU fallback' to run it on a CPU worker instead)."
                )
    return queue, region or "default", device, warning


def job_launch(*, actor, template: Any, params: Any = None, data: Any = None, resource_class: Any = "cpu",
               region: Any = None, priority: Any = None, max_runtime_s: Any = None, seed: Any = None,
               allow_cpu_fallback: bool = False, experiment: Any = None, model_name: Any = None,
               sweep=None, trial_number: int | None = None, team=None) -> TrainingJob:  # fmt: skip
    """Validate everything, write the job and its queued run, and send the task on commit.

    `team` (a Team, id, slug or name; the actor must belong to it) shares the job, its run's
    experiment and, once trained, the registered model with that team as viewers. A sweep's
    children take the sweep's team.
    """
    require(actor, "add", TrainingJob)
    if sweep is not None:
        if sweep.state in sweep.TERMINAL:
            raise Conflict(f"Sweep {sweep.pk} is {sweep.state}; it launches no more trials.")
        team = sweep.team
    else:
        team = resolve_team(actor, team)
    errors: dict[str, list[str]] = {}
    if not isinstance(template, str) or template not in engine_templates.TEMPLATES:
        raise ValidationError(
            {"template": [f"Unknown template {template!r}; use one of {', '.join(engine_templates.TEMPLATES)}."]}
        )
    spec = engine_templates.get_template(template)
    clean_params, param_errors = spec.validate(params)
    for key, messages in param_errors.items():
        errors["params" if key == "__all__" else f"params.{key}"] = list(messages)
    if resource_class not in queues.RESOURCE_CLASSES:
        errors["resource_class"] = [f"Use one of {', '.join(queues.RESOURCE_CLASSES)}."]
    if region not in (None, "") and not isinstance(region, str):
        errors["region"] = ["region is a region name such as uae-north."]
    priority = _int_field(errors, "priority", priority, 5, 0, 9)
    max_runtime_s = _int_field(errors, "max_runtime_s", max_runtime_s, 3600, 1, MAX_RUNTIME_LIMIT_S)
    seed = _int_field(errors, "seed", seed, 0, 0, 2**31 - 1)
    if not isinstance(allow_cpu_fallback, bool):
        errors["allow_cpu_fallback"] = ["allow_cpu_fallback is true or false."]
    if errors:
        raise ValidationError(errors)
    data_spec, training_set = clean_data_spec(data, actor=actor, template=spec)
    queue, region_name, device, warning = resolve_route(
        resource_class=resource_class,
        region=region or None,
        data_region=training_set.region if training_set is not None else None,
        allow_cpu_fallback=allow_cpu_fallback,
    )
    user_slug = slugify(actor.username) or f"user-{actor.pk}"
    model_name = _check_model_name(actor, model_name, f"{user_slug}-{template}"[:100].strip("-"))
    with transaction.atomic():
        exp = sweep.experiment if sweep is not None else _experiment_for(actor, template, experiment, team)
        job = TrainingJob.objects.create(
            owner=actor,
            team=team,
            template=template,
            params=clean_params,
            data=data_spec,
            training_set=training_set,
            resource_class=resource_class,
            region=region_name,
            queue=queue,
            priority=priority,
            max_runtime_s=max_runtime_s,
            seed=seed,
            allow_cpu_fallback=allow_cpu_fallback,
            device=device,
            warning=warning,
            celery_task_id=str(uuid.uuid4()),
            experiment=exp,
            model_name=model_name,
            sweep=sweep,
            trial_number=trial_number,
        )
        from apps.experiments.models import Run
        from apps.experiments.services import run_create

        run_params = {**{k: str(v) for k, v in clean_params.items()}, "template": template, "seed": str(seed)}
        run = run_create(
            experiment=exp,
            name=f"job-{job.pk}" if sweep is None else f"{sweep.name}-trial-{trial_number}",
            actor=actor,
            source=Run.Source.JOB,
            params=run_params,
            tags={"training_job": str(job.pk), "queue": queue},
            status=Run.Status.QUEUED,
        )
        job.run = run
        job.save(update_fields=["run"])
        grant_owner(job)
        if team is not None:
            share(job, role="viewer", team=team)
            audit_event(actor=actor, event="trainingjob.share", obj=job, data={"team": team.slug, "role": "viewer"})
        transaction.on_commit(lambda: dispatch(job))
    return job


def dispatch(job: TrainingJob) -> None:
    from apps.training.tasks import run_job

    # Job priority 9 is the most urgent; the Redis transport serves priority 0 first.
    run_job.apply_async(args=[job.pk], queue=job.queue, priority=9 - job.priority, task_id=job.celery_task_id)


def _redis():
    return workers.redis_client()


def cancel_flag_set(job: TrainingJob) -> None:
    """Mirror the cancel flag in Redis, keyed by the job's task id (unique even across databases)."""
    try:
        _redis().set(CANCEL_KEY.format(job.celery_task_id), "1", ex=7 * 24 * 3600)
    except Exception:  # the row is the source of truth; the worker falls back to it
        log.warning("could not mirror the cancel flag of job %s to Redis", job.pk)


def cancel_requested(job: TrainingJob) -> bool:
    """Cheap check for the worker: the Redis mirror, else the row."""
    try:
        return bool(_redis().exists(CANCEL_KEY.format(job.celery_task_id)))
    except Exception:
        return TrainingJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def job_cancel(*, job: TrainingJob, actor, sweep=None) -> TrainingJob:
    """Cancel a queued job at once (and revoke its message); ask a running job to stop between steps.

    `sweep`: the job is cancelled as a child of that sweep, whose change right the caller checked.
    """
    if sweep is None or job.sweep_id != sweep.pk:
        require(actor, "change", job)
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if locked.state in TrainingJob.TERMINAL:
            raise Conflict(f"Job {job.pk} is already {locked.state}; there is nothing to cancel.")
        locked.cancel_requested = True
        locked.save(update_fields=["cancel_requested", "updated_at"])
        if locked.state == State.QUEUED:
            job_transition(job=locked, to=State.CANCELLED, error="Cancelled while queued.")
            task_id = locked.celery_task_id
            transaction.on_commit(lambda: _revoke(task_id))
        transaction.on_commit(lambda: cancel_flag_set(locked))
    return locked


def _revoke(task_id: str) -> None:
    from portal.celery import app

    try:
        app.control.revoke(task_id)
    except Exception:  # the task also checks the row first, so a missed revoke is harmless
        log.warning("revoke of task %s failed", task_id)


def job_transition(*, job: TrainingJob, to: str, **fields) -> TrainingJob:
    """Move the job (already locked or fresh) along the state machine and mirror the run's status."""
    from apps.experiments.models import Run
    from apps.experiments.services import run_set_status

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
    if job.run_id:
        run_status = {
            State.RUNNING: Run.Status.RUNNING,
            State.SUCCEEDED: Run.Status.FINISHED,
            State.FAILED: Run.Status.FAILED,
            State.CANCELLED: Run.Status.KILLED,
        }.get(to)
        run = Run.objects.get(pk=job.run_id)
        if run_status is not None and run.status != run_status and not run.is_terminal:
            run_set_status(run=run, status=run_status)
    transaction.on_commit(lambda: publish(job))
    if to in TrainingJob.TERMINAL and job.sweep_id:
        sweep_id = job.sweep_id
        transaction.on_commit(lambda: _advance_sweep(sweep_id))
    return job


def _advance_sweep(sweep_id: int) -> None:
    from apps.training.tasks import sweep_advance

    sweep_advance.apply_async(args=[sweep_id], queue="default")


def job_message(job: TrainingJob) -> dict[str, Any]:
    return {
        "type": "job",
        "job": job.pk,
        "state": job.state,
        "progress": round(job.progress, 4),
        "eta_s": None if job.eta_s is None else round(job.eta_s, 1),
        "epochs_completed": job.epochs_completed,
        "worker": job.worker,
        "error": job.error[:500],
    }


def publish(job: TrainingJob) -> None:
    send_now(group_name("trainingjob", job.pk), job_message(job))


def cost_of(job: TrainingJob) -> float:
    rates = getattr(settings, "QUEUE_COST_PER_HOUR", {})
    base = queues.split_queue(job.queue)[0]
    hours = (job.gpu_s if base == "gpu" and job.gpu_s else job.wall_s) / 3600
    return round(hours * float(rates.get(base, 0.0)), 4)
