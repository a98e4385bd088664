"""Hyperparameter sweeps: create, cancel, and advance (launch trials into free slots, close when done).

A sweep keeps at most `parallelism` child jobs active. Whenever a child ends, `job_transition`
sends `training.sweep_advance` on commit, which records the best trial and launches the next
ones, so no process has to wait for the sweep. How the next params are chosen is
`apps.training.search`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.audit import audit_event
from apps.core.errors import Conflict
from apps.core.permissions import grant_owner, require
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.training import search
from apps.training.datasource import clean_data_spec
from apps.training.engine import templates as engine_templates
from apps.training.models import Sweep, TrainingJob
from apps.training.services.jobs import (
    MAX_RUNTIME_LIMIT_S,
    MAX_SEED,
    experiment_of_launch,
    job_cancel,
    trial_launch,
    whole_number,
)
from apps.training.services.routing import resolve_route

MAX_TRIALS = 200
MAX_PARALLELISM = 16
MAX_GRID_VALUES = 50
LOSS_METRICS = ("val_loss", "val_rmse", "val_mae")


def _clean_values(template, name: str, values: Any, fixed: dict, errors: list[str]) -> dict | None:
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_GRID_VALUES:
        errors.append(f"{name}: values is a list of 1 to {MAX_GRID_VALUES} items.")
        return None
    coerced = []
    for value in values:
        clean_value, problem = engine_templates.validate_params(template.name, {**fixed, name: value})
        if problem.get(name):
            errors.append(f"{name}={value!r}: {', '.join(problem[name])}")
        else:
            coerced.append(clean_value[name])
    return {"values": coerced}


def _clean_range(spec, name: str, rule: dict, errors: list[str]) -> dict | None:
    try:
        low, high = spec.coerce(rule["min"]), spec.coerce(rule["max"])
    except ValueError as exc:
        errors.append(f"{name}: {exc}")
        return None
    log = bool(rule.get("log", spec.log))
    if low >= high or spec.validate(low) or spec.validate(high) or (log and low <= 0):
        errors.append(f"{name}: need {spec.min} <= min < max <= {spec.max} (and min > 0 for log scale).")
        return None
    return {"min": low, "max": high, "log": log, "type": spec.type}


def _clean_space(template, space: Any, method: str, fixed: dict) -> dict:
    if not isinstance(space, dict) or not space:
        raise ValidationError({"space": ['Give at least one parameter to search, e.g. {"lr": {"values": [0.01]}}.']})
    specs = {p.name: p for p in template.params}
    clean: dict[str, dict] = {}
    errors: list[str] = []
    for name, rule in space.items():
        spec = specs.get(name)
        if spec is None:
            errors.append(f"{name}: unknown parameter of {template.name}.")
        elif name in fixed:
            errors.append(f"{name}: is both fixed in params and searched.")
        elif not isinstance(rule, dict):
            errors.append(f'{name}: give {{"values": [...]}} or {{"min": .., "max": ..}}.')
        elif "values" in rule:
            clean[name] = _clean_values(template, name, rule["values"], fixed, errors)
        elif spec.type in ("int", "float") and "min" in rule and "max" in rule:
            clean[name] = _clean_range(spec, name, rule, errors)
        else:
            errors.append(f"{name}: give values, or min and max for a numeric parameter.")
    if not errors and method == Sweep.Method.GRID and any("values" not in r for r in clean.values()):
        errors.append("grid search needs a values list for every parameter.")
    if errors:
        raise ValidationError({"space": errors})
    return clean


def _clean_fixed(spec, params: Any) -> dict:
    fixed = params or {}
    if not isinstance(fixed, dict):
        raise ValidationError({"params": ["params is an object of fixed parameter values."]})
    clean, errors = spec.validate(fixed)
    if errors:
        raise ValidationError({f"params.{k}": v for k, v in errors.items()})
    return {k: v for k, v in clean.items() if k in fixed}


def _metric_and_mode(spec, metric: str, mode: str) -> tuple[str, str]:
    metric = metric or spec.monitor
    if metric not in spec.metrics:
        raise ValidationError({"metric": [f"Use one of {', '.join(spec.metrics)}."]})
    default_mode = spec.monitor_mode if metric == spec.monitor else ("min" if metric in LOSS_METRICS else "max")
    mode = mode or default_mode
    if mode not in ("min", "max"):
        raise ValidationError({"mode": ["Use min or max."]})
    return metric, mode


def sweep_create(
    *, actor, name: str, template: str, method: str, space: Any, params: Any = None, metric: str = "",
    mode: str = "", max_trials: int | None = None, parallelism: int | None = None, seed: int | None = None,
    data: Any = None, resource_class: str = "cpu", region: str = "", max_runtime_s: int | None = None,
    experiment: int | None = None, team: str | None = None,
) -> Sweep:  # fmt: skip
    """Validate and start a sweep (its first trials are launched in the same transaction).

    `team` is the slug of a team the actor belongs to: the sweep, its experiment, its child jobs
    and their model are shared with the team as viewers. `ValidationError` names each bad field.
    """
    require(actor, "add", Sweep)
    require(actor, "add", TrainingJob)
    found_team = team_for_create(actor=actor, slug=team)
    if template not in engine_templates.TEMPLATES:
        raise ValidationError({"template": [f"Unknown template; use one of {', '.join(engine_templates.TEMPLATES)}."]})
    spec = engine_templates.get_template(template)
    if method not in Sweep.Method.values:
        raise ValidationError({"method": [f"Use one of {', '.join(Sweep.Method.values)}."]})
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError({"name": ["Give the sweep a name of 1 to 100 characters."]})
    fixed = _clean_fixed(spec, params)
    clean_space = _clean_space(spec, space, method, fixed)
    metric, mode = _metric_and_mode(spec, metric, mode)
    errors: dict[str, list[str]] = {}
    size = search.grid_size(clean_space) if method == Sweep.Method.GRID else None
    max_trials = whole_number(errors, "max_trials", max_trials, min(size or 10, MAX_TRIALS), 1, MAX_TRIALS)
    parallelism = whole_number(errors, "parallelism", parallelism, 2, 1, MAX_PARALLELISM)
    seed = whole_number(errors, "seed", seed, 0, 0, MAX_SEED)
    max_runtime_s = whole_number(errors, "max_runtime_s", max_runtime_s, 3600, 1, MAX_RUNTIME_LIMIT_S)
    if errors:
        raise ValidationError(errors)
    data_spec, training_set = clean_data_spec(data, actor=actor, template=spec)
    resolve_route(resource_class=resource_class, region=region or None, allow_cpu_fallback=False,
                  data_region=training_set.region if training_set else None, actor=actor, obj=training_set)  # fmt: skip
    with transaction.atomic():
        exp = experiment_of_launch(actor, template, experiment, found_team)
        sweep = Sweep.objects.create(
            owner=actor, team=found_team, name=name, template=template, method=method, space=clean_space,
            base_params=fixed, metric=metric, mode=mode, max_trials=min(max_trials, size or max_trials),
            parallelism=parallelism, seed=seed, experiment=exp,
            launch={"data": data_spec, "resource_class": resource_class, "region": region or "",
                    "max_runtime_s": max_runtime_s},
        )  # fmt: skip
        grant_owner(sweep)
        share_with_team_on_create(sweep, found_team)
        sweep_advance(sweep_id=sweep.pk)
    return sweep


def sweep_cancel(*, sweep: Sweep, actor) -> Sweep:
    """Stop the sweep: no new trials; queued children are cancelled (and revoked), running ones are
    asked to stop between steps, all through `job_cancel`. `Conflict` when already finished."""
    require(actor, "change", sweep)
    with transaction.atomic():
        locked = Sweep.objects.select_for_update().get(pk=sweep.pk)
        if locked.state in Sweep.TERMINAL:
            raise Conflict(f"Sweep {locked.name!r} is already {locked.state}; there is nothing to cancel.")
        # Lock the active children before any (hash-chained, audited) write, in the order a
        # checkpoint writer takes them: job row first, then the audit chain.
        children = list(
            TrainingJob.objects.select_for_update().filter(sweep=locked, state__in=TrainingJob.ACTIVE).order_by("pk")
        )
        locked.state = Sweep.State.CANCELLED
        locked.finished_at = timezone.now()
        locked.save(update_fields=["state", "finished_at", "updated_at"])
        cancelled, stopping = [], []
        for job in children:
            job = job_cancel(job=job, actor=actor, sweep=locked)
            (cancelled if job.state == TrainingJob.State.CANCELLED else stopping).append(job.pk)
        audit_event(actor=actor, event="sweep.cancel", obj=locked, data={"cancelled": cancelled, "stopping": stopping})
    return locked


def sweep_advance(*, sweep_id: int) -> int:
    """Record the best trial, launch trials into free slots, close the sweep when all are done.

    Called by the `training.sweep_advance` task (as the system: trials are launched as the
    sweep's owner) and once by `sweep_create`. Returns how many trials it launched."""
    launched = 0
    with transaction.atomic():
        sweep = (
            Sweep.objects.select_for_update(of=("self",))
            .select_related("owner", "experiment", "team")
            .filter(pk=sweep_id)
            .first()
        )
        if sweep is None or sweep.state in Sweep.TERMINAL:  # a cancelled sweep never launches again
            return 0
        jobs = sweep.jobs.all()
        active = jobs.filter(state__in=TrainingJob.ACTIVE).count()
        created = jobs.count()
        best = search.best_trial(sweep)
        if best is not None and best.pk != sweep.best_job_id:
            sweep.best_job = best
            sweep.save(update_fields=["best_job", "updated_at"])
        free = min(sweep.parallelism - active, sweep.max_trials - created)
        for trial in range(created, created + max(free, 0)):
            params = search.next_params(sweep, trial)
            if params is None:
                break
            trial_launch(sweep=sweep, trial_number=trial, params={**sweep.base_params, **params})
            launched += 1
        if launched == 0 and active == 0 and created > 0:
            sweep.state = Sweep.State.SUCCEEDED if best is not None else Sweep.State.FAILED
            sweep.finished_at = timezone.now()
            sweep.save(update_fields=["state", "finished_at", "updated_at"])
    return launched
