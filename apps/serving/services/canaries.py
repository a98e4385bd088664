"""Canary ramps: start, abort, and the scheduled evaluation that advances, completes or rolls back.

A canary moves a target version onto an endpoint step by step. Starting it puts a live route
named `canary` (pinned to the target) beside the baseline (the live route with the largest
weight) and gives it `steps[0]` percent, taken from the baseline; other live routes are untouched.
A step's weight is `min(step, base)`, base being the baseline's weight when the canary started,
so with other live routes beside it the canary ends at the baseline's whole share.

`canaries_evaluate_due` (the beat task `serving.evaluate_canaries`) compares, for each due canary,
the canary route's traffic windows since its step began with the baseline's, plus recorded
outcomes when the outcome guard is set: too few samples on either side -> hold; worse on any
guard -> roll back by itself (weight back to the baseline, the numbers in `reason`, audit,
notification); otherwise the next step, or at the last step completion (the baseline route takes
the target version, the canary route goes). Each canary is evaluated in its own transaction with
its row locked, so two beats never act twice. Route rows are changed with save()/create()/
delete() only, so every process's predict cache hears of it (apps/serving/signals.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.approvals.models import PromotionRequest
from apps.catalog.models import Alias, ModelVersion
from apps.core.audit import audit_event
from apps.core.errors import Conflict
from apps.core.permissions import require
from apps.notifications.services import notify
from apps.serving.models import Canary, Endpoint, Route
from apps.serving.services import residency as serving_residency
from apps.serving.services.canary_rules import clean_plan, compare, samples_short

log = logging.getLogger(__name__)

CANARY_ROUTE = "canary"


def _live_routes(endpoint: Endpoint) -> list[Route]:
    return list(
        Route.objects.select_for_update(of=("self",))
        .filter(endpoint=endpoint, mode=Route.Mode.LIVE)
        .select_related("model", "version")
        .order_by("position", "name")
    )


def baseline_of(routes: list[Route]) -> Route | None:
    """The live route with the largest weight (the first in position order on a tie), not the canary."""
    candidates = [r for r in routes if r.name != CANARY_ROUTE and r.weight > 0]
    return max(candidates, key=lambda r: (r.weight, -r.position)) if candidates else None


def _target_version(baseline: Route, version) -> ModelVersion:
    number = version.version if isinstance(version, ModelVersion) else version
    found = None
    if isinstance(number, int) and not isinstance(number, bool):
        found = ModelVersion.objects.filter(model=baseline.model, version=number).first()
    if found is None:
        raise ValidationError(
            {
                "version": [
                    f"Model {baseline.model.name} (the baseline route {baseline.name}) has no version {number!r}."
                ]
            }
        )
    return found


def serving_version_id(route: Route) -> int | None:
    if route.version_id:
        return route.version_id
    return Alias.objects.filter(model=route.model, name=route.alias).values_list("version_id", flat=True).first()


def _promotion_ref(baseline: Route, target: ModelVersion) -> str:
    """'' when the baseline is pinned or follows an unprotected alias; else the approved promotion of
    the target to that alias (Conflict without one)."""
    if (
        not baseline.alias
        or not Alias.objects.filter(model=baseline.model, name=baseline.alias, protected=True).exists()
    ):
        return ""
    promotion = (
        PromotionRequest.objects.filter(
            model=baseline.model, version=target, target_alias=baseline.alias, state=PromotionRequest.State.PROMOTED
        )
        .order_by("-promoted_at", "-pk")
        .first()
    )
    if promotion is None:
        raise Conflict(
            f"The baseline route {baseline.name} follows the protected alias {baseline.model.name}@{baseline.alias}: "
            f"a canary of v{target.version} needs an approved promotion of that version to {baseline.alias} first. "
            "Request one with POST /api/v1/promotions/."
        )
    return str(promotion.pk)


def move_weight(canary_route: Route, baseline: Route, weight: int) -> None:
    """Set the canary route to `weight`, the baseline giving or taking the difference."""
    delta = weight - canary_route.weight
    if delta:
        baseline.weight -= delta
        baseline.save()
        canary_route.weight = weight
        canary_route.save()


def canary_route_for(endpoint: Endpoint, baseline: Route, target: ModelVersion) -> Route:
    """The existing `canary` route re-pinned to the target at 0 %, or a new one."""
    route = Route.objects.select_for_update().filter(endpoint=endpoint, name=CANARY_ROUTE).first()
    if route is None:
        last = Route.objects.filter(endpoint=endpoint).order_by("-position").values_list("position", flat=True).first()
        return Route.objects.create(
            endpoint=endpoint, name=CANARY_ROUTE, model=baseline.model, version=target, alias="", weight=0,
            mode=Route.Mode.LIVE, position=(last or 0) + 1,
        )  # fmt: skip
    if route.mode != Route.Mode.LIVE or route.weight:
        raise Conflict(
            f"Endpoint {endpoint.name} already has a route called {CANARY_ROUTE!r} with traffic or in shadow mode; "
            "rename it or set it live at 0 % before starting a canary."
        )
    route.model, route.version, route.alias = baseline.model, target, ""
    route.save()
    return route


def canary_start(*, actor, endpoint: Endpoint, version, **plan) -> Canary:
    """Start a canary of `version` (a number of the baseline route's model) on `endpoint` with the
    plan `_canary_start` takes (steps, step_interval_s, guards). A version pinned to another region
    than the endpoint's is refused first (409, audited: services/residency.py)."""
    require(actor, "change", endpoint)
    serving_residency.check_canary(actor=actor, endpoint=endpoint, version=version)
    return _canary_start(actor=actor, endpoint=endpoint, version=version, **plan)


@transaction.atomic
def _canary_start(*, actor, endpoint: Endpoint, version, steps, step_interval_s, guards=None) -> Canary:
    """Start a canary of `version` (a number of the baseline route's model) on `endpoint`. Needs
    `change`. ValidationError for bad steps, interval, guards or version; Conflict while one runs,
    when the baseline lacks the first step's weight, or for a protected alias's version without
    an approved promotion."""
    require(actor, "change", endpoint)
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.archived_at:
        raise Conflict(f"Endpoint {endpoint.name} is archived; it takes no canary.")
    if Canary.objects.filter(endpoint=endpoint, state=Canary.State.RUNNING).exists():
        raise Conflict(
            f"A canary is already running on {endpoint.name}; abort it first: "
            f"POST /api/v1/endpoints/{endpoint.name}/canary/abort"
        )
    steps, step_interval_s, guards = clean_plan(steps, step_interval_s, guards)
    baseline = baseline_of(_live_routes(endpoint))
    if baseline is None:
        raise Conflict(f"Endpoint {endpoint.name} has no live route with traffic to compare a canary with.")
    target = _target_version(baseline, version)
    if target.pk == serving_version_id(baseline):
        raise ValidationError({"version": [f"The baseline route {baseline.name} already serves v{target.version}."]})
    if baseline.weight < steps[0]:
        raise Conflict(
            f"The baseline route {baseline.name} carries {baseline.weight} % of the traffic; the first step needs "
            f"{steps[0]} %. Start with a smaller first step or give {baseline.name} more weight."
        )
    promotion_ref = _promotion_ref(baseline, target)
    route = canary_route_for(endpoint, baseline, target)
    move_weight(route, baseline, steps[0])
    now = timezone.now()
    canary = Canary.objects.create(
        endpoint=endpoint, version=target, route_name=route.name, baseline_route=baseline.name, steps=steps,
        step_interval_s=step_interval_s, guards=guards, step=0, weight=steps[0], promotion_ref=promotion_ref,
        started_by=actor, step_started_at=now, next_evaluation_at=now + timedelta(seconds=step_interval_s),
    )  # fmt: skip
    audit_event(
        actor=actor, event="canary.start", obj=endpoint,
        data={"canary": canary.pk, "version": target.version, "baseline": baseline.name, "steps": steps,
              "step_interval_s": step_interval_s, "guards": guards, "promotion": promotion_ref or None},
    )  # fmt: skip
    return canary


def _routes_of(canary: Canary) -> tuple[Route | None, Route | None]:
    routes = {r.name: r for r in _live_routes(canary.endpoint)}
    return routes.get(canary.route_name), routes.get(canary.baseline_route)


def _finish(canary: Canary, state: str, reason: str, now: datetime) -> None:
    canary.state, canary.reason, canary.finished_at = state, reason, now
    canary.save()


def _notify(canary: Canary, kind: str, title: str) -> None:
    notify(
        recipients=[canary.endpoint.owner, canary.started_by], kind=kind, title=title, body=canary.reason,
        url=reverse("serving:canary", args=[canary.endpoint.name]), obj=canary.endpoint,
    )  # fmt: skip


@transaction.atomic
def canary_abort(*, actor, endpoint: Endpoint) -> Canary:
    """Stop the running canary: its route back to 0 % (the baseline gets the weight), state
    `aborted`. Needs `change`; Conflict when none runs."""
    require(actor, "change", endpoint)
    canary = (
        Canary.objects.select_for_update(of=("self",))
        .select_related("endpoint__owner", "started_by", "version")
        .filter(endpoint=endpoint, state=Canary.State.RUNNING)
        .first()
    )
    if canary is None:
        raise Conflict(f"No canary is running on {endpoint.name}; there is nothing to abort.")
    canary_route, baseline = _routes_of(canary)
    if canary_route is not None and baseline is not None:
        move_weight(canary_route, baseline, 0)
    now = timezone.now()
    canary.weight = 0
    reason = f"Aborted by {actor.username} at step {canary.step + 1}; back to 0 %." + _pin_note(canary, baseline)
    _finish(canary, Canary.State.ABORTED, reason, now)
    audit_event(actor=actor, event="canary.abort", obj=endpoint, data={"canary": canary.pk, "step": canary.step})
    return canary


# --- evaluation -----------------------------------------------------------------------------


def _pin_note(canary: Canary, baseline: Route | None) -> str:
    """What a ramp of an alias move leaves behind when it stops short: the pinned baseline."""
    if not canary.follow_alias or baseline is None or baseline.alias:
        return ""
    return (
        f" The route {baseline.name} stays pinned to v{baseline.version.version} although the alias "
        f"{canary.follow_alias} points to v{canary.version.version}: roll the promotion back, or move "
        f"the route back to the alias when ready."
    )


def _roll_back(canary: Canary, canary_route: Route | None, baseline: Route | None, reason: str, actor, now) -> str:
    reason += _pin_note(canary, baseline)
    if canary_route is not None and baseline is not None:
        move_weight(canary_route, baseline, 0)
    canary.weight = 0
    _finish(canary, Canary.State.ROLLED_BACK, reason, now)
    audit_event(
        actor=actor, event="canary.rollback", obj=canary.endpoint,
        data={"canary": canary.pk, "step": canary.step, "reason": reason, "evaluation": canary.evaluations[-1:]},
    )  # fmt: skip
    _notify(canary, "canary.rolled_back", f"Canary of v{canary.version.version} on {canary.endpoint.name} rolled back")
    return Canary.State.ROLLED_BACK


def _complete(canary: Canary, canary_route: Route, baseline: Route, actor, now) -> str:
    target = canary.version
    weight = baseline.weight + canary_route.weight
    note = f"The baseline route {baseline.name} now serves v{target.version}"
    follow = canary.follow_alias and Alias.objects.filter(model=baseline.model, name=canary.follow_alias).first()
    if follow:  # a ramp of an alias move: follow the alias again (it still points to the target, or moved on)
        baseline.alias, baseline.version = follow.name, None
        note += f" by following the alias {follow.name} again"
        if follow.version_id != target.pk:
            note += f", which has moved on to v{follow.version.version} meanwhile"
    elif baseline.alias:
        alias_version = serving_version_id(baseline)
        if alias_version == target.pk:
            note += f" through the alias {baseline.alias}, which already points to it"
        else:
            note += f"; it followed the alias {baseline.alias}, which does not point to v{target.version}, so it is now pinned"
            baseline.alias, baseline.version = "", target
    else:
        baseline.version = target
    baseline.weight = weight
    baseline.save()
    canary_route.delete()
    _finish(canary, Canary.State.COMPLETED, note + ".", now)
    audit_event(
        actor=actor, event="canary.complete", obj=canary.endpoint,
        data={"canary": canary.pk, "version": target.version, "baseline": baseline.name, "reason": canary.reason},
    )  # fmt: skip
    _notify(canary, "canary.completed", f"Canary of v{target.version} on {canary.endpoint.name} completed")
    return Canary.State.COMPLETED


def _advance(canary: Canary, canary_route: Route, baseline: Route, now) -> str:
    base = canary_route.weight + baseline.weight
    canary.step += 1
    move_weight(canary_route, baseline, min(canary.steps[canary.step], base))
    canary.weight = canary_route.weight
    canary.step_started_at = now
    canary.next_evaluation_at = now + timedelta(seconds=canary.step_interval_s)
    canary.save()
    return "advanced"


def _evaluate(canary: Canary, actor, now: datetime) -> str:
    canary_route, baseline = _routes_of(canary)
    if canary_route is None or baseline is None:
        missing = canary.route_name if canary_route is None else canary.baseline_route
        canary.evaluations = [*canary.evaluations, {"step": canary.step, "verdict": "rollback", "at": now.isoformat()}]
        return _roll_back(
            canary, canary_route, baseline, f"The live route {missing} is gone; the ramp stops.", actor, now
        )
    sides = samples_short(canary, canary_route, baseline)
    entry = {"step": canary.step, "weight": canary.weight, "at": now.isoformat(), **sides.numbers}
    if sides.short:
        canary.evaluations = [*canary.evaluations, {**entry, "verdict": "hold", "note": sides.short}]
        canary.next_evaluation_at = now + timedelta(seconds=canary.step_interval_s)
        canary.save()
        return "held"
    failure = compare(canary.guards, sides)
    if failure:
        canary.evaluations = [*canary.evaluations, {**entry, "verdict": "rollback", "note": failure}]
        return _roll_back(canary, canary_route, baseline, f"Rolled back at step {canary.step + 1} "
                          f"({canary.weight} %): {failure}.", actor, now)  # fmt: skip
    last = canary.step + 1 >= len(canary.steps)
    canary.evaluations = [*canary.evaluations, {**entry, "verdict": "complete" if last else "advance"}]
    if last:
        return _complete(canary, canary_route, baseline, actor, now)
    return _advance(canary, canary_route, baseline, now)


def canaries_evaluate_due(*, actor, now: datetime | None = None) -> dict:
    """Evaluate every running canary whose next evaluation is due; returns {canary id: outcome}
    (held, advanced, completed, rolled_back). Each in its own transaction with its row locked and
    re-checked, so a concurrent beat skips what this one is acting on."""
    now = now or timezone.now()
    due = list(
        Canary.objects.filter(state=Canary.State.RUNNING, next_evaluation_at__lte=now)
        .order_by("next_evaluation_at", "pk")
        .values_list("pk", flat=True)
    )
    results: dict = {}
    for pk in due:
        try:
            with transaction.atomic():
                locked = Canary.objects.select_for_update().filter(
                    pk=pk, state=Canary.State.RUNNING, next_evaluation_at__lte=now
                )
                if list(locked.values_list("pk", flat=True)):  # re-checked under the lock: a second beat skips
                    canary = Canary.objects.select_related("endpoint__owner", "started_by", "version").get(pk=pk)
                    results[pk] = _evaluate(canary, actor, now)
        except Exception:  # one canary's failure (rolled back whole) never stops the others' evaluation
            log.exception("evaluating canary %s failed; it is tried again at the next beat", pk)
            results[pk] = "failed"
    return results
