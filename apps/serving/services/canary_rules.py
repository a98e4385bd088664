"""The rules of a canary ramp, apart from its writes: validating a plan (steps, interval, guards),
gathering each side's numbers for one evaluation, and judging them against the guards.

Guards are limits on how much worse the canary may be than the baseline route: `error_rate` (an
absolute share, 0.02 = two points), `p95_latency_ms` (milliseconds), `outcome` (how far the mean
outcome may fall below the baseline's; optional), `min_samples` (requests, and outcomes when the
outcome guard is set, that each side needs before any verdict; default 100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from apps.serving.models import Canary, Route
from apps.serving.traffic_selectors import route_outcomes, route_window_stats

GUARD_KEYS = ("error_rate", "p95_latency_ms", "outcome", "min_samples")
DEFAULT_MIN_SAMPLES = 100
MAX_MIN_SAMPLES = 10_000_000
MIN_INTERVAL_S, MAX_INTERVAL_S = 10, 86_400
MAX_STEPS = 20


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def clean_steps(steps) -> list[int]:
    if not isinstance(steps, list | tuple) or not steps or len(steps) > MAX_STEPS:
        raise ValidationError({"steps": [f"Give 1 to {MAX_STEPS} traffic percentages, such as [5, 25, 50, 100]."]})
    if not all(_whole(s) and 1 <= s <= 100 for s in steps):
        raise ValidationError({"steps": ["Each step is a whole percentage from 1 to 100."]})
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValidationError({"steps": ["Steps must rise strictly, such as [5, 25, 50, 100]."]})
    if steps[-1] != 100:
        raise ValidationError({"steps": ["The last step must be 100 (the canary takes the baseline's whole share)."]})
    return list(steps)


def clean_interval(value) -> int:
    if not _whole(value) or not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise ValidationError(
            {
                "step_interval_s": [
                    f"Give whole seconds from {MIN_INTERVAL_S} to {MAX_INTERVAL_S:,} between evaluations."
                ]
            }
        )
    return value


def clean_guards(guards) -> dict:
    guards = {} if guards is None else guards
    if not isinstance(guards, dict):
        raise ValidationError({"guards": ["Give an object: error_rate, p95_latency_ms, outcome, min_samples."]})
    unknown = sorted(str(k) for k in guards if k not in GUARD_KEYS)
    if unknown:
        raise ValidationError({"guards": [f"Unknown guard(s) {', '.join(unknown)}; known: {', '.join(GUARD_KEYS)}."]})
    cleaned = {key: guards[key] for key in GUARD_KEYS if guards.get(key) is not None}
    if "error_rate" in cleaned and not (_number(cleaned["error_rate"]) and 0 <= cleaned["error_rate"] <= 1):
        raise ValidationError({"guards": ["error_rate is a share from 0 to 1 (0.02: two points above the baseline)."]})
    if "p95_latency_ms" in cleaned and not (
        _number(cleaned["p95_latency_ms"]) and 0 <= cleaned["p95_latency_ms"] <= 1e6
    ):
        raise ValidationError(
            {"guards": ["p95_latency_ms is the most milliseconds the canary's p95 may exceed the baseline's."]}
        )
    if "outcome" in cleaned and not (_number(cleaned["outcome"]) and cleaned["outcome"] >= 0):
        raise ValidationError(
            {"guards": ["outcome is how far (0 or more) the canary's mean outcome may fall below the baseline's."]}
        )
    if not {"error_rate", "p95_latency_ms", "outcome"} & set(cleaned):
        raise ValidationError({"guards": ["Set at least one of error_rate, p95_latency_ms and outcome."]})
    min_samples = cleaned.get("min_samples", DEFAULT_MIN_SAMPLES)
    if not _whole(min_samples) or not 1 <= min_samples <= MAX_MIN_SAMPLES:
        raise ValidationError({"guards": [f"min_samples is a whole number from 1 to {MAX_MIN_SAMPLES:,}."]})
    return {**cleaned, "min_samples": min_samples}


def clean_plan(steps, step_interval_s, guards) -> tuple[list[int], int, dict]:
    return clean_steps(steps), clean_interval(step_interval_s), clean_guards(guards)


def rollout_clean(plan) -> dict:
    """A stored rollout plan: {} (switch at once) or {"steps", "step_interval_s", "guards"} checked
    like a canary's (field errors under `rollout`)."""
    if plan in (None, {}):
        return {}
    if not isinstance(plan, dict):
        raise ValidationError({"rollout": ["Send {} (switch at once) or {steps, step_interval_s, guards}."]})
    unknown = sorted(set(plan) - {"steps", "step_interval_s", "guards"})
    if unknown:
        raise ValidationError({"rollout": [f"Unknown field {unknown[0]!r}: use steps, step_interval_s and guards."]})
    try:
        steps, interval, guards = clean_plan(plan.get("steps"), plan.get("step_interval_s"), plan.get("guards"))
    except ValidationError as exc:
        raise ValidationError({"rollout": [m for messages in exc.message_dict.values() for m in messages]}) from None
    return {"steps": steps, "step_interval_s": interval, "guards": guards}


def _share(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


@dataclass
class Sides:
    """What one evaluation saw: each side's numbers (as stored in `evaluations`) and, when either
    side lacks samples, why it holds."""

    baseline: dict
    canary: dict
    short: str = ""
    numbers: dict = field(default_factory=dict)


def _side(endpoint_id: int, route: str, since, version_id: int | None, with_outcomes: bool) -> dict:
    stats = route_window_stats(endpoint_id, route, since, version_id)
    if with_outcomes:
        group = route_outcomes(endpoint_id, route, since, version_id)
        stats |= {"outcomes": group.n, "outcome_mean": group.mean}
    return stats


def samples_short(canary: Canary, canary_route: Route, baseline: Route) -> Sides:
    """Gather both sides since the step began. At a step where the baseline has no weight left (the
    last, 100 %), the baseline's numbers are taken from the whole ramp instead."""
    with_outcomes = canary.guards.get("outcome") is not None
    baseline_since = canary.step_started_at if baseline.weight > 0 else canary.started_at
    base = _side(canary.endpoint_id, baseline.name, baseline_since, None, with_outcomes)
    new = _side(canary.endpoint_id, canary_route.name, canary.step_started_at, canary.version_id, with_outcomes)
    need = canary.guards.get("min_samples", DEFAULT_MIN_SAMPLES)
    short = []
    for label, side in (("canary", new), ("baseline", base)):
        if side["requests"] < need:
            short.append(f"the {label} has {side['requests']:,} of {need:,} requests")
        if with_outcomes and side["outcomes"] < need:
            short.append(f"the {label} has {side['outcomes']:,} of {need:,} outcomes")
    text = ("holding: " + "; ".join(short)) if short else ""
    return Sides(baseline=base, canary=new, short=text, numbers={"baseline": base, "canary": new})


def _exceeds(higher: float | None, lower: float | None, limit: float) -> bool:
    """Does `higher` exceed `lower` by more than `limit`? Unknown numbers never fail a guard."""
    return higher is not None and lower is not None and higher - lower > limit


def compare(guards: dict, sides: Sides) -> str:
    """'' when the canary holds on every guard, else the first failure in words with its numbers."""
    base, new = sides.baseline, sides.canary
    over = f"over {new['requests']:,} and {base['requests']:,} requests"
    limit = guards.get("error_rate")
    if limit is not None and (new["error_rate"] or 0) - (base["error_rate"] or 0) > limit:
        return (
            f"error rate {_share(new['error_rate'])} against {_share(base['error_rate'])} on the baseline "
            f"(allowed +{limit * 100:.1f} points) {over}"
        )
    limit = guards.get("p95_latency_ms")
    if limit is not None and _exceeds(new["p95_ms"], base["p95_ms"], limit):
        return (
            f"p95 latency {new['p95_ms']:.1f} ms against {base['p95_ms']:.1f} ms on the baseline "
            f"(allowed +{limit:g} ms) {over}"
        )
    limit = guards.get("outcome")
    if limit is not None and _exceeds(base.get("outcome_mean"), new.get("outcome_mean"), limit):
        return (
            f"mean outcome {new['outcome_mean']:.3f} against {base['outcome_mean']:.3f} on the baseline "
            f"(allowed -{limit:g}) over {new['outcomes']:,} and {base['outcomes']:,} outcomes"
        )
    return ""
