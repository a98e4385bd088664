"""How a sweep searches: grid, seeded random and Optuna TPE (with a median pruner), and its best trial.

Reads only. Optuna studies are rebuilt in memory from the sweep's finished child jobs, which are
the single source of truth; the writes (launching trials, closing the sweep) are
`apps.training.services.sweeps`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Any

from apps.training.models import Sweep, TrainingJob


def grid_size(space: dict) -> int:
    return math.prod(len(r["values"]) for r in space.values())


def next_params(sweep: Sweep, trial: int) -> dict | None:
    """The searched params of trial number `trial`; None when a grid is exhausted."""
    if sweep.method == Sweep.Method.GRID:
        names = sorted(sweep.space)
        combos = itertools.product(*(sweep.space[n]["values"] for n in names))
        combo = next(itertools.islice(combos, trial, None), None)
        return None if combo is None else dict(zip(names, combo, strict=True))
    if sweep.method == Sweep.Method.RANDOM:
        return _sample_random(sweep, trial)
    study, dists = _study(sweep, sampler_seed=sweep.seed + trial)
    return dict(study.ask(dists).params)


def pruner_for(job: TrainingJob) -> Callable[[int, dict], bool] | None:
    """For TPE sweeps: a callable(epoch, metrics) -> bool backed by Optuna's MedianPruner."""
    sweep = job.sweep
    if sweep is None or sweep.method != Sweep.Method.TPE:
        return None
    seen: dict[int, float] = {}

    def should_prune(epoch: int, metrics: dict) -> bool:
        import optuna  # heavy: only sweep trials pay for it

        value = metrics.get(sweep.metric)
        if not finite(value):
            return False
        seen[epoch] = float(value)
        # Epochs are 1-based: never pruned after epoch 1.
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
        study, dists = _study(sweep, sampler_seed=0, pruner=pruner, exclude=job.pk)
        trial = study.ask()
        for step, v in sorted(seen.items()):
            trial.report(v, step)
        return bool(trial.should_prune())

    return should_prune


def best_trial(sweep: Sweep) -> TrainingJob | None:
    """The succeeded child with the best finite value of the sweep's metric."""
    best, best_value = None, None
    for job in sweep.jobs.filter(state=TrainingJob.State.SUCCEEDED):
        value = job.metrics.get(sweep.metric)
        if not finite(value):
            continue
        if best_value is None or (value < best_value if sweep.mode == "min" else value > best_value):
            best, best_value = job, value
    return best


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _sample_random(sweep: Sweep, trial: int) -> dict:
    rng = random.Random(f"{sweep.seed}:{trial}")  # noqa: S311  seeded so a sweep is reproducible, not a secret
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
    import optuna  # heavy: only TPE sweeps pay for it

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
    import optuna  # heavy: only TPE sweeps pay for it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "minimize" if sweep.mode == "min" else "maximize"
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=3)
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
    dists = _distributions(sweep)
    finished = sweep.jobs.filter(state__in=(TrainingJob.State.SUCCEEDED, TrainingJob.State.CANCELLED))
    for job in finished.exclude(pk=exclude).order_by("trial_number"):
        history = (job.result or {}).get("history") or {}
        epochs = history.get("epochs", []) if isinstance(history, dict) else history
        steps = {int(h["epoch"]): float(h[sweep.metric]) for h in epochs if finite(h.get(sweep.metric))}
        params = {k: job.params[k] for k in dists if k in job.params}
        if len(params) != len(dists):
            continue
        value = job.metrics.get(sweep.metric)
        if job.state == TrainingJob.State.SUCCEEDED and finite(value):
            state, value = optuna.trial.TrialState.COMPLETE, float(value)
        elif (job.result or {}).get("pruned_at_epoch") and steps:
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            continue
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state,
                                                  intermediate_values=steps))  # fmt: skip
    return study, dists
