"""Alias moves that ramp in: an endpoint with a rollout plan meets a move of the alias its baseline
route follows with a canary instead of a switch.

Without a plan (`Endpoint.rollout == {}`) a route on an alias switches when the alias moves. With
one, in the same transaction as the move (apps/serving/signals.py calls `rollouts_begin` from the
Alias save): the baseline route is pinned to the version it served, a `canary` route on the new
version takes the plan's first step, and the ramp runs as any canary (services/canaries.py):
advancing while it holds, rolling back by itself when it is worse. On completion the baseline
follows the alias again; after a rollback or an abort it stays pinned to the old version (the
reason says so) until the alias moves again: back to that version (the pin is released) or on to
another one (a new ramp). A protected alias only moves through an approved promotion, so such a
ramp always rests on one.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from apps.core.audit import audit_event, system_user
from apps.serving.models import Canary, Endpoint, Route
from apps.serving.services.canaries import CANARY_ROUTE, baseline_of, canary_route_for, move_weight

log = logging.getLogger(__name__)


def _ramps(alias) -> list[tuple[Endpoint, Route]]:
    """(endpoint, baseline route) for each live endpoint with a plan whose baseline follows `alias`."""
    found = []
    following = Route.objects.filter(model_id=alias.model_id, alias=alias.name).values("endpoint_id")
    endpoints = Endpoint.objects.select_for_update().filter(archived_at__isnull=True, pk__in=following)
    for endpoint in endpoints.order_by("pk"):
        live = list(
            Route.objects.select_for_update(of=("self",))
            .filter(endpoint=endpoint, mode=Route.Mode.LIVE)
            .select_related("model", "version")
            .order_by("position", "name")
        )
        baseline = baseline_of(live)
        if baseline is not None and baseline.model_id == alias.model_id and baseline.alias == alias.name:
            found.append((endpoint, baseline))
    return found


def _release_pins(alias) -> set[int]:
    """A route pinned by a ramp that did not complete follows its alias again once the alias is
    back on the version it was pinned to (a rolled-back promotion). Returns the released routes."""
    released = set()
    finished = Canary.objects.filter(
        endpoint__routes__model_id=alias.model_id, follow_alias=alias.name, state__in=Canary.FINAL
    ).exclude(state=Canary.State.COMPLETED)
    for canary in finished.select_related("endpoint").distinct():
        route = Route.objects.filter(
            endpoint=canary.endpoint, name=canary.baseline_route, alias="", version_id=alias.version_id
        ).first()
        newer = Canary.objects.filter(endpoint=canary.endpoint, started_at__gt=canary.started_at).exists()
        if route is not None and not newer:
            route.version, route.alias = None, alias.name
            route.save()
            released.add(route.pk)
            audit_event(
                actor=system_user(), event="rollout.release", obj=canary.endpoint,
                data={"route": route.name, "alias": alias.name, "version": alias.version.version},
            )  # fmt: skip
    return released


def rollouts_begin(*, alias, previous_version_id: int | None) -> list[Canary]:
    """Called inside the transaction that moved `alias` (from `previous_version_id`): start a ramp
    on every endpoint with a rollout plan whose baseline follows it. An endpoint already running a
    canary switches at once, as one without a plan does (its running ramp is not disturbed)."""
    released = _release_pins(alias)  # these already serve the alias's new version: nothing to ramp
    if previous_version_id is None or previous_version_id == alias.version_id:
        return []
    started = []
    for endpoint, baseline in _ramps(alias):
        if (
            baseline.pk in released
            or not endpoint.rollout
            or Canary.objects.filter(endpoint=endpoint, state=Canary.State.RUNNING).exists()
        ):
            continue
        steps = endpoint.rollout["steps"]
        if baseline.weight < steps[0]:
            log.warning(
                "endpoint %s: baseline %s has %s %%, too little to ramp", endpoint.name, baseline.name, steps[0]
            )
            continue
        baseline.alias, baseline.version_id = "", previous_version_id  # keeps serving what it served
        baseline.save()
        route = canary_route_for(endpoint, baseline, alias.version)
        move_weight(route, baseline, steps[0])
        now = timezone.now()
        interval = endpoint.rollout["step_interval_s"]
        canary = Canary.objects.create(
            endpoint=endpoint, version=alias.version, route_name=route.name, baseline_route=baseline.name,
            steps=steps, step_interval_s=interval, guards=endpoint.rollout.get("guards", {}), step=0,
            weight=route.weight, promotion_ref=alias.promotion_ref, follow_alias=alias.name,
            started_by=alias.moved_by, step_started_at=now, next_evaluation_at=now + timedelta(seconds=interval),
        )  # fmt: skip
        audit_event(
            actor=alias.moved_by, event="canary.start", obj=endpoint,
            data={"canary": canary.pk, "version": alias.version.version, "baseline": baseline.name, "steps": steps,
                  "alias": alias.name, "promotion": alias.promotion_ref or None, "route": CANARY_ROUTE},
        )  # fmt: skip
        started.append(canary)
    return started
