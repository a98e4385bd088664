"""Launching and cancelling training jobs: validation, permissions, residency, queue routing,
the job's run in an experiment, team sharing, and the task sent after commit."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import Team
from apps.catalog.models import RegisteredModel
from apps.catalog.services import NAME_ROUTE_PREFIXES as MODEL_ROUTE_PREFIXES
from apps.core import queues
from apps.core.audit import audit_event
from apps.core.errors import Conflict, Forbidden, NotFound
from apps.core.names import check_name, slug_from
from apps.core.permissions import can, grant_owner, require
from apps.core.sharing import share_object, share_with_team_on_create, sharing_list, team_for_create
from apps.experiments.models import Experiment, Run
from apps.experiments.selectors import experiment_for
from apps.experiments.services import experiment_create, run_create
from apps.training.datasource import clean_data_spec
from apps.training.engine import templates as engine_templates
from apps.training.models import TrainingJob
from apps.training.services.dispatch import job_enqueue, task_revoke
from apps.training.services.flags import cancel_flag_set, lease_held
from apps.training.services.routing import check_launch_regions, resolve_route
from apps.training.services.states import State, job_transition

MAX_RUNTIME_LIMIT_S = 7 * 24 * 3600
MAX_SEED = 2**31 - 1
MAX_QUEUE_LIMIT_S = 7 * 24 * 3600
RUN_NAME_MAX = 200


def whole_number(errors: dict, name: str, value: Any, default: int, low: int, high: int) -> int:
    """`value` (an int, or None for `default`) within [low, high]; otherwise a field error in `errors`.

    Callers parse text first (the API's serializers, the page forms); this is the range rule.
    """
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        errors[name] = [f"{name} must be a whole number."]
        return default
    if not low <= value <= high:
        errors[name] = [f"{name} must be between {low} and {high}."]
    return value


def share_existing_with_team(obj, *, team: Team | None, actor) -> None:
    """An object that existed before (a chosen experiment, a model taking a new version) becomes
    visible to the job's `team` as viewer, through the share service; a team that already holds
    a role on it keeps it (an editor is never downgraded)."""
    if team is None or any(entry.get("team") == team.slug for entry in sharing_list(obj)):
        return
    share_object(obj=obj, actor=actor, role="viewer", team=team)


def default_experiment_name(actor, template: str, team: Team | None) -> str:
    who = team.slug if team is not None else slug_from(actor.username, fallback=f"user-{actor.pk}")
    return slug_from(f"training-{who}-{template}")


def experiment_by_name(actor, name: str, team: Team | None) -> Experiment:
    """The experiment called `name`: an existing one the actor may add runs to, or a new one
    (created for the actor and shared with `team` as viewer)."""
    existing = Experiment.objects.filter(name=name).first()
    if existing is None:
        who = team.name if team is not None else actor.username
        try:
            return experiment_create(
                actor=actor, name=name, description=f"Training jobs of {who}.", team=team.slug if team else None
            )
        except ValidationError as exc:  # the name's rules are the experiment's; the field is ours
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"name": exc.messages}
            raise ValidationError({"experiment_name" if k == "name" else k: v for k, v in errors.items()}) from None
    if not can(actor, "change", existing):  # a name is unique, so saying it is taken reveals nothing more
        raise ValidationError(
            {"experiment_name": [f"An experiment called {name!r} exists and does not accept your runs; choose "
                                 "another name."]}
        )  # fmt: skip
    share_existing_with_team(existing, team=team, actor=actor)
    return existing


def experiment_of_launch(
    actor, template: str, experiment_id: int | None, team: Team | None, experiment_name: str | None = None
) -> Experiment:
    """The experiment a job's (or sweep's) runs go to: the chosen one (the actor must be able to
    add runs to it), or the one named `experiment_name` (created if new), else the team's or the
    actor's training experiment, created on first use."""
    if experiment_id is not None and experiment_name:
        raise ValidationError({"experiment_name": ["Choose an experiment or name a new one, not both."]})
    if experiment_name:
        return experiment_by_name(actor, experiment_name, team)
    if experiment_id is not None:
        try:
            experiment = experiment_for(actor, experiment_id, "change")
        except NotFound:
            raise ValidationError({"experiment": [f"No experiment {experiment_id} is visible to you."]}) from None
        except Forbidden:
            raise ValidationError({"experiment": ["You may view this experiment but not add runs to it."]}) from None
        share_existing_with_team(experiment, team=team, actor=actor)
        return experiment
    name = default_experiment_name(actor, template, team)
    existing = Experiment.objects.filter(name=name).first()
    if existing is not None and team is not None and not can(actor, "change", existing):
        # A teammate's team experiment (the team views it): this member's runs go to their own.
        name = slug_from(f"training-{team.slug}-{slug_from(actor.username)}-{template}")
        existing = Experiment.objects.filter(name=name).first()
    if existing is None:
        who = team.name if team is not None else actor.username
        return experiment_create(
            actor=actor, name=name, description=f"Training jobs of {who}.", team=team.slug if team else None
        )
    if not can(actor, "change", existing):
        raise ValidationError(
            {"experiment": [f"The experiment {name!r} does not accept your runs; choose an experiment you can "
                            "add runs to."]}
        )  # fmt: skip
    return existing


def model_name_checked(actor, name: str | None, template: str) -> str:
    """The catalog model a job registers under: valid, and either new or one the actor may add to."""
    if not name:
        name = slug_from(f"{slug_from(actor.username, fallback=f'user-{actor.pk}')}-{template}")
    check_name(name, route_prefixes=MODEL_ROUTE_PREFIXES, field="model_name")
    existing = RegisteredModel.objects.filter(name=name).first()
    if existing is not None and not can(actor, "change", existing):
        raise ValidationError({"model_name": [f"A model called {name!r} exists and you cannot add versions to it."]})
    return name


def _checked_settings(
    *, template: str, params: Any, resource_class: str, region: str | None, priority: int | None,
    max_runtime_s: int | None, seed: int | None, max_queue_s: int | None = None,
) -> tuple[Any, dict, dict[str, int | None]]:  # fmt: skip
    """(template spec, clean params, {priority, max_runtime_s, seed, max_queue_s}), or every field
    error at once. `max_queue_s` None: the job waits in its queue until a worker takes it."""
    if not isinstance(template, str) or template not in engine_templates.TEMPLATES:
        raise ValidationError(
            {"template": [f"Unknown template {template!r}; use one of {', '.join(engine_templates.TEMPLATES)}."]}
        )
    spec = engine_templates.get_template(template)
    clean_params, param_errors = spec.validate(params)
    errors: dict[str, list[str]] = {
        "params" if key == "__all__" else f"params.{key}": list(messages) for key, messages in param_errors.items()
    }
    if resource_class not in queues.RESOURCE_CLASSES:
        errors["resource_class"] = [f"Use one of {', '.join(queues.RESOURCE_CLASSES)}."]
    if region is not None and not isinstance(region, str):
        errors["region"] = ["region is a region name such as uae-north."]
    numbers = {
        "priority": whole_number(errors, "priority", priority, 5, 0, 9),
        "max_runtime_s": whole_number(errors, "max_runtime_s", max_runtime_s, 3600, 1, MAX_RUNTIME_LIMIT_S),
        "seed": whole_number(errors, "seed", seed, 0, 0, MAX_SEED),
        "max_queue_s": None
        if max_queue_s is None
        else whole_number(errors, "max_queue_s", max_queue_s, 0, 60, MAX_QUEUE_LIMIT_S),
    }
    if errors:
        raise ValidationError(errors)
    return spec, clean_params, numbers


def run_name_checked(run_name: Any) -> str | None:
    """The run's name as given (trimmed), None for the default `job-<id>`; a field error otherwise."""
    if run_name in (None, ""):
        return None
    if not isinstance(run_name, str) or not run_name.strip() or len(run_name.strip()) > RUN_NAME_MAX:
        raise ValidationError({"run_name": [f"Give the run a name of 1 to {RUN_NAME_MAX} characters."]})
    return run_name.strip()


def job_launch(
    *, actor, template: str, params: Any = None, data: Any = None, resource_class: str = "cpu",
    region: str | None = None, priority: int | None = None, max_runtime_s: int | None = None,
    seed: int | None = None, allow_cpu_fallback: bool = False, experiment: int | None = None,
    model_name: str | None = None, team: str | None = None, run_name: str | None = None,
    max_queue_s: int | None = None, experiment_name: str | None = None,
) -> TrainingJob:  # fmt: skip
    """Validate everything, write the job and its queued run, and send the task on commit.

    `team` is the slug of a team the actor belongs to: the job, its run's experiment and, once
    trained, the registered model are shared with the team as viewers (docs/SECURITY.md).
    `experiment` is the id of an experiment the actor may add runs to, or `experiment_name` names
    one (an existing one they may add runs to, or a new one); default: their training experiment.
    `run_name` the run's name there (default `job-<id>`). `max_queue_s` (60 s to 7
    days; default none) fails the job if no worker has taken it by then (apps/training/recovery.py).
    Raises `Forbidden` without the role's add permission, `ValidationError` naming each bad field.
    """
    require(actor, "add", TrainingJob)
    found_team = team_for_create(actor=actor, slug=team)
    return _launch(
        actor=actor, template=template, params=params, data=data, resource_class=resource_class, region=region,
        priority=priority, max_runtime_s=max_runtime_s, seed=seed, allow_cpu_fallback=allow_cpu_fallback,
        experiment=experiment, model_name=model_name, team=found_team, run_name=run_name_checked(run_name),
        max_queue_s=max_queue_s, experiment_name=(experiment_name or "").strip() or None,
    )  # fmt: skip


def trial_launch(*, sweep, trial_number: int, params: dict) -> TrainingJob:
    """One trial of `sweep` as its owner, in the sweep's experiment and team (inside the caller's
    transaction, which holds the sweep's row). `Conflict` once the sweep has ended."""
    if sweep.state in sweep.TERMINAL:
        raise Conflict(f"Sweep {sweep.pk} is {sweep.state}; it launches no more trials.")
    require(sweep.owner, "add", TrainingJob)
    launch = sweep.launch
    return _launch(
        actor=sweep.owner, template=sweep.template, params=params, data=launch.get("data"),
        resource_class=launch.get("resource_class", "cpu"), region=launch.get("region") or None,
        priority=None, max_runtime_s=launch.get("max_runtime_s"), seed=sweep.seed, allow_cpu_fallback=False,
        experiment=None, model_name=slug_from(f"{slug_from(sweep.owner.username)}-sweep-{sweep.pk}"),
        team=sweep.team, sweep=sweep, trial_number=trial_number,
    )  # fmt: skip


def _launch(
    *, actor, template, params, data, resource_class, region, priority, max_runtime_s, seed, allow_cpu_fallback,
    experiment, model_name, team: Team | None, sweep=None, trial_number: int | None = None,
    run_name: str | None = None, max_queue_s: int | None = None, experiment_name: str | None = None,
) -> TrainingJob:  # fmt: skip
    spec, clean_params, numbers = _checked_settings(
        template=template, params=params, resource_class=resource_class, region=region or None,
        priority=priority, max_runtime_s=max_runtime_s, seed=seed, max_queue_s=max_queue_s,
    )  # fmt: skip
    if not isinstance(allow_cpu_fallback, bool):
        raise ValidationError({"allow_cpu_fallback": ["allow_cpu_fallback is true or false."]})
    data_spec, training_set = clean_data_spec(data, actor=actor, template=spec)
    queue, region_name, device, warning = resolve_route(
        resource_class=resource_class,
        region=region or None,
        data_region=training_set.region if training_set is not None else None,
        allow_cpu_fallback=allow_cpu_fallback,
        actor=actor,
        obj=training_set,
    )
    model_name = model_name_checked(actor, model_name, template)
    data_region = training_set.region if training_set is not None else None
    check_launch_regions(
        actor=actor, region=data_region, experiment_id=experiment if sweep is None else sweep.experiment_id,
        experiment_name=experiment_name, model_name=model_name,
    )  # fmt: skip
    with transaction.atomic():
        exp = (
            sweep.experiment
            if sweep is not None
            else experiment_of_launch(actor, template, experiment, team, experiment_name)
        )
        job = TrainingJob.objects.create(
            owner=actor, team=team, template=template, params=clean_params, data=data_spec,
            training_set=training_set, resource_class=resource_class, region=region_name, queue=queue,
            allow_cpu_fallback=allow_cpu_fallback, device=device, warning=warning,
            celery_task_id=str(uuid.uuid4()), experiment=exp, model_name=model_name, sweep=sweep,
            trial_number=trial_number, **numbers,
        )  # fmt: skip
        run_params = {**{k: str(v) for k, v in clean_params.items()}, "template": template, "seed": str(job.seed)}
        job.run = run_create(
            experiment=exp,
            name=run_name or (f"job-{job.pk}" if sweep is None else f"{sweep.name}-trial-{trial_number}"),
            actor=actor,
            source=Run.Source.JOB,
            params=run_params,
            # the runs table and compare page open on the metric the template optimises
            tags={"training_job": str(job.pk), "queue": queue, "primary_metric": spec.monitor},
            status=Run.Status.QUEUED,
            region=data_region,  # a run of pinned data is pinned with it; else its experiment's
        )
        job.save(update_fields=["run"])
        grant_owner(job)
        share_with_team_on_create(job, team)
        job_enqueue(job)
    return job


def job_cancel(*, job: TrainingJob, actor, sweep=None) -> TrainingJob:
    """Cancel a queued job at once (and revoke its message); ask a running job to stop between steps.

    A running job whose delivery is gone (no live lease: its worker was killed or the broker lost
    its message) is cancelled at once too, so a cancel always reaches a final state.
    `sweep`: the job is cancelled as a child of that sweep, whose change right the caller checked.
    `Conflict` when the job has already ended.
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
            task_revoke(locked.celery_task_id)
        elif lease_held(locked) is False:  # checked under the row lock: a delivery starting now waits for it
            job_transition(
                job=locked, to=State.CANCELLED, error="Cancelled; its worker was gone, so it stopped at once."
            )
        transaction.on_commit(lambda: cancel_flag_set(locked))
    return locked


def job_move_to_cpu(*, job: TrainingJob, actor) -> TrainingJob:
    """Send a queued GPU job to the CPU queue of its region instead (the owner's one-click answer
    to "no GPU worker is online"): a new message on the cpu queue, the old one revoked, audited.

    `Conflict` unless the job is still queued on a GPU queue; `Forbidden` without change rights.
    """
    require(actor, "change", job)
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().get(pk=job.pk)
        if locked.state != State.QUEUED:
            raise Conflict(f"Job {job.pk} is {locked.state}; only a queued job can move to a CPU worker.")
        base, region = queues.split_queue(locked.queue)
        if base != "gpu":
            raise Conflict(f"Job {job.pk} already waits on the CPU queue {locked.queue}.")
        old_queue, old_task = locked.queue, locked.celery_task_id
        locked.queue = queues.queue_name("cpu", region)
        locked.device = "cpu"
        locked.allow_cpu_fallback = True
        locked.warning = ""
        locked.celery_task_id = str(uuid.uuid4())  # the old message, if a GPU worker ever takes it, is stale
        locked.save(update_fields=["queue", "device", "allow_cpu_fallback", "warning", "celery_task_id", "updated_at"])
        audit_event(
            actor=actor, event="trainingjob.move_to_cpu", obj=locked, data={"from": old_queue, "to": locked.queue}
        )
        task_revoke(old_task)
        job_enqueue(locked)
    return locked
