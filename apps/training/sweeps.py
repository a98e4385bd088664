"""Hyperparameter sweeps: grid, random and Optuna TPE (with a median pruner) over child jobs.

A sweep keeps at most `parallelism` child jobs active. Whenever a child ends, `sweep_advance`
(a task sent on commit) records the best trial and launches the next ones, so no process has
to wait for the sweep. Optuna studies are rebuilt in memory from the finished child jobs, which
are the single source of truth.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.errors import Conflict
from apps.core.audit import audit_event
from apps.core.permissions import grant_owner, require
from apps.training import services
from apps.training.datasource import clean_data_spec
from apps.training.engine import templates as engine_templates
from apps.training.models import Sweep, TrainingJob

MAX_TRIALS = 200
MAX_PARALLELISM = 16
MAX_GRID_VALUES = 50


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
            continue
        if name in fixed:
            errors.append(f"{name}: is both fixed in params and searched.")
            continue
        if not isinstance(rule, dict):
            errors.append(f'{name}: give {{"values": [...]}} or {{"min": .., "max": ..}}.')
            continue
        if "values" in rule:
            values = rule["values"]
            if not isinstance(values, list) or not 1 <= len(values) <= MAX_GRID_VALUES:
                errors.append(f"{name}: values is a list of 1 to {MAX_GRID_VALUES} items.")
                continue
            coerced = []
            for value in values:
                clean_value, problem = engine_templates.validate_params(template.name, {**fixed, name: value})
                if problem.get(name):
                    errors.append(f"{name}={value!r}: {', '.join(problem[name])}")
                else:
                    coerced.append(clean_value[name])
            clean[name] = {"values": coerced}
        elif spec.type in ("int", "float") and "min" in rule and "max" in rule:
            try:
                low, high = spec.coerce(rule["min"]), spec.coerce(rule["max"])
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
                continue
            log = bool(rule.get("log", spec.log))
            if low >= high or spec.validate(low) or spec.validate(high) or (log and low <= 0):
                errors.append(f"{name}: need {spec.min} <= min < max <= {spec.max} (and min > 0 for log scale).")
                continue
            clean[name] = {"min": low, "max": high, "log": log, "type": spec.type}
        else:
            errors.append(f"{name}: give values, or min and max for a numeric parameter.")
    if not errors and method == Sweep.Method.GRID and any("values" not in r for r in clean.values()):
        errors.append("grid search needs a values list for every parameter.")
    if errors:
        raise ValidationError({"space": errors})
    return clean


def _int(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise ValidationError({name: [f"{name} must be a whole number."]})
    value = int(value)
    if not low <= value <= high:
        raise ValidationError({name: [f"{name} must be between {low} and {high}."]})
    return value


def grid_size(space: dict) -> int:
    return math.prod(len(r["values"]) for r in space.values())


def sweep_create(*, actor, name: str, template: str, method: str, space: Any, params: Any = None, metric: str = "",
                 mode: str = "", max_trials: Any = None, parallelism: Any = None, seed: Any = None, data: Any = None,
                 resource_class: str = "cpu", region: str = "", max_runtime_s: Any = None,
                 experiment: Any = None, team: Any = None) -> Sweep:  # fmt: skip
    """Validate and start a sweep; `team` (id, slug or name of the actor's team) shares it, its
    experiment, its child jobs and their model with that team as viewers."""
    require(actor, "add", Sweep)
    require(actor, "add", TrainingJob)
    team = services.resolve_team(actor, team)
    if template not in engine_templates.TEMPLATES:
        raise ValidationError({"template": [f"Unknown template; use one of {', '.join(engine_templates.TEMPLATES)}."]})
    spec = engine_templates.get_template(template)
    if method not in Sweep.Method.values:
        raise ValidationError({"method": [f"Use one of {', '.join(Sweep.Method.values)}."]})
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError({"name": ["Give the sweep a name of 1 to 100 characters."]})
    fixed = params or {}
    if not isinstance(fixed, dict):
        raise ValidationError({"params": ["params is an object of fixed parameter values."]})
    _, errors = spec.validate(fixed)
    if errors:
        raise ValidationError({f"params.{k}": v for k, v in errors.items()})
    fixed = {k: v for k, v in spec.validate(fixed)[0].items() if k in fixed}
    clean_space = _clean_space(spec, space, method, fixed)
    metric = metric or spec.monitor
    if metric not in spec.metrics:
        raise ValidationError({"metric": [f"Use one of {', '.join(spec.metrics)}."]})
    default_mode = (
        spec.monitor_mode
        if metric == spec.monitor
        else ("min" if metric in ("val_loss", "val_rmse", "val_mae") else "max")
    )
    mode = mode or default_mode
    if mode not in ("min", "max"):
        raise ValidationError({"mode": ["Use min or max."]})
    default_trials = grid_size(clean_space) if method == Sweep.Method.GRID else 10
    max_trials = _int(max_trials, "max_trials", min(default_trials, MAX_TRIALS), 1, MAX_TRIALS)
    if method == Sweep.Method.GRID:
        max_trials = min(max_trials, grid_size(clean_space))
    parallelism = _int(parallelism, "parallelism", 2, 1, MAX_PARALLELISM)
    seed = _int(seed, "seed", 0, 0, 2**31 - 1)
    max_runtime_s = _int(max_runtime_s, "max_runtime_s", 3600, 1, services.MAX_RUNTIME_LIMIT_S)
    data_spec, training_set = clean_data_spec(data, actor=actor, template=spec)
    services.resolve_route(resource_class=resource_class, region=region or None, allow_cpu_fallback=False,
                           data_region=training_set.region if training_set else None)  # fmt: skip
    with transaction.atomic():
        exp = services._experiment_for(actor, template, experiment, team)
        sweep = Sweep.objects.create(
            owner=actor, team=team, name=name, template=template, method=method, space=clean_space, base_params=fixed,
            launch={"data": data_spec, "resource_class": resource_class, "region": region or "",
                    "max_runtime_s": max_runtime_s},
            metric=metric, mode=mode, max_trials=max_trials, parallelism=parallelism, seed=seed, experiment=exp,
        )  # fmt: skip
        grant_owner(sweep)
        services.share_with_team(sweep, team=team, actor=actor)
        sweep_advance(sweep_id=sweep.pk)
    return sweep


def sweep_cancel(*, sweep: Sweep, actor) -> Sweep:
    """Stop the sweep: no new trials; queued children are cancelled (and revoked), running ones are
    asked to stop between steps, all through `services.job_cancel`. 409 when already finished."""
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
            job = services.job_cancel(job=job, actor=actor, sweep=locked)
            (cancelled if job.state == TrainingJob.State.CANCELLED else stopping).append(job.pk)
        audit_event(actor=actor, event="sweep.cancel", obj=locked, data={"cancelled": cancelled, "stopping": stopping})
    return locked


def _sample_random(sweep: Sweep, trial: int) -> dict:
    rng = random.Random(f"{sweep.seed}:{trial}")
    out = {}
    for name in sorted(sweep.space):
        rule = sweep.space[name]
        if "values" in rule:
            out[name] = rng.choice(rule["values"])
            continue
        low, high = rule["min"], rule["max"]
        value = math.exp(rng.uniform(math.log(low), math.log(high))) if rule["log"] else rng.uniform(low, high)
        out[name] = int(round(value)) if rule["type"] == "int" else value
    return out


def _distributions(sweep: Sweep) -> dict:
    import optuna

    out = {}
    for name, rule in sweep.space.items():
        if "values" in rule:
            out[name] = optuna.distributions.CategoricalDistribution(rule["values"])
        elif rule["type"] == "int":
            out[name] = optuna.distributions.IntDistribution(int(rule["min"]), int(rule["max"]), log=rule["log"])
        else:
            out[name] = optuna.distributions.FloatDistribution(rule["min"], rule["max"], log=rule["log"])
    return out


def _study(sweep: Sweep, *, sampler_seed: int, pruner=None, exclude: int | None = None):
    """An in-memory Optuna study holding the sweep's finished trials (complete or pruned)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "minimize" if sweep.mode == "min" else "maximize"
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=3)
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
    dists = _distributions(sweep)
    finished = sweep.jobs.filter(state__in=(TrainingJob.State.SUCCEEDED, TrainingJob.State.CANCELLED))
    for job in finished.exclude(pk=exclude).order_by("trial_number"):
        history = (job.result or {}).get("history") or {}
        epochs = history.get("epochs", []) if isinstance(history, dict) else history
        steps = {int(h["epoch"]): float(h[sweep.metric]) for h in epochs if _finite(h.get(sweep.metric))}
        params = {k: job.params[k] for k in dists if k in job.params}
        if len(params) != len(dists):
            continue
        value = job.metrics.get(sweep.metric)
        if job.state == TrainingJob.State.SUCCEEDED and _finite(value):
            state, value = optuna.trial.TrialState.COMPLETE, float(value)
        elif (job.result or {}).get("pruned_at_epoch") and steps:
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            continue
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state,
                                                  intermediate_values=steps))  # fmt: skip
    return study, dists


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def next_params(sweep: Sweep, trial: int) -> dict | None:
    if sweep.method == Sweep.Method.GRID:
        names = sorted(sweep.space)
        combos = itertools.product(*(sweep.space[n]["values"] for n in names))
        combo = next(itertools.islice(combos, trial, None), None)
        return None if combo is None else dict(zip(names, combo, strict=True))
    if sweep.method == Sweep.Method.RANDOM:
        return _sample_random(sweep, trial)
    study, dists = _study(sweep, sampler_seed=sweep.seed + trial)
    return dict(study.ask(dists).params)


def pruner_for(job: TrainingJob):
    """For TPE sweeps: a callable(epoch, metrics) -> bool backed by Optuna's MedianPruner."""
    sweep = job.sweep
    if sweep is None or sweep.method != Sweep.Method.TPE:
        return None
    seen: dict[int, float] = {}

    def should_prune(epoch: int, metrics: dict) -> bool:
        import optuna

        value = metrics.get(sweep.metric)
        if not _finite(value):
            return False
        seen[epoch] = float(value)
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=2, n_warmup_steps=2
        )  # epochs are 1-based: never after epoch 1
        study, dists = _study(sweep, sampler_seed=0, pruner=pruner, exclude=job.pk)
        trial = study.ask()
        for step, v in sorted(seen.items()):
            trial.report(v, step)
        return bool(trial.should_prune())

    return should_prune


def sweep_advance(*, sweep_id: int) -> int:
    """Record the best trial, launch trials into free slots, close the sweep when all are done."""
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
        best = _best(sweep)
        if best is not None and best.pk != sweep.best_job_id:
            sweep.best_job = best
            sweep.save(update_fields=["best_job", "updated_at"])
        free = min(sweep.parallelism - active, sweep.max_trials - created)
        for trial in range(created, created + max(free, 0)):
            params = next_params(sweep, trial)
            if params is None:
                break
            services.job_launch(
                actor=sweep.owner,
                template=sweep.template,
                params={**sweep.base_params, **params},
                data=sweep.launch.get("data"),
                resource_class=sweep.launch.get("resource_class", "cpu"),
                region=sweep.launch.get("region") or None,
                max_runtime_s=sweep.launch.get("max_runtime_s"),
                seed=sweep.seed,
                sweep=sweep,
                trial_number=trial,
                model_name=f"{services.slugify(sweep.owner.username) or 'user'}-sweep-{sweep.pk}"[:100],
            )
            launched += 1
        if launched == 0 and active == 0 and created > 0:
            sweep.state = Sweep.State.SUCCEEDED if best is not None else Sweep.State.FAILED
            sweep.finished_at = timezone.now()
            sweep.save(update_fields=["state", "finished_at", "updated_at"])
    return launched


def _best(sweep: Sweep) -> TrainingJob | None:
    best, best_value = None, None
    for job in sweep.jobs.filter(state=TrainingJob.State.SUCCEEDED):
        value = job.metrics.get(sweep.metric)
        if not _finite(value):
            continue
        if best_value is None or (value < best_value if sweep.mode == "min" else value > best_value):
            best, best_value = job, value
    return best
