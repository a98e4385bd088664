"""Writes of endpoints and their routes: create, update (routes replaced as a whole), archive.

Each service checks the actor's permission itself, validates, writes in one transaction and audits
the change with the routes before and after. Route rows are written with save()/create()/delete()
so the predict path's caches hear of every change (apps/serving/signals.py). Canary ramps change
routes through their own service (services/canaries.py), not through here.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.catalog.models import alias_validator as _alias_validator
from apps.core import permissions
from apps.core.audit import audit_event
from apps.core.errors import Conflict
from apps.core.names import check_name
from apps.core.queues import validate_region
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.serving.models import Canary, Endpoint, Route
from apps.serving.services import residency as serving_residency
from apps.serving.services.canary_rules import rollout_clean

# Where an endpoint's name may not be a fixed word of the routes (`/endpoints/new/`).
NAME_ROUTE_PREFIXES = ("endpoints/", "api/v1/endpoints/")
MODES = tuple(Route.Mode.values)
UPDATABLE = frozenset({"description", "log_sample_rate", "routes", "rollout"})
ROUTE_KEYS = frozenset({"name", "model", "version", "alias", "weight", "mode"})
MAX_ROUTES = 20


@dataclass(frozen=True)
class RouteSpec:
    """One validated route: what a Route row holds, in the order given."""

    name: str
    model: RegisteredModel
    version: ModelVersion | None
    alias: str
    weight: int
    mode: str

    def as_audit(self) -> dict:
        return route_summary(self)


def route_summary(route) -> dict:
    """A route as the audit log and the API name it: model by name, version by number."""
    return {
        "name": route.name,
        "model": route.model.name,
        "version": route.version.version if route.version is not None else None,
        "alias": route.alias or None,
        "weight": route.weight,
        "mode": route.mode,
    }


# --- validation -----------------------------------------------------------------------------


def _fail(position: int, name: str, message: str) -> ValidationError:
    label = f"Route {position + 1}" + (f" ({name})" if name else "")
    return ValidationError({"routes": [f"{label}: {message}"]})


def _visible_model(actor, model) -> RegisteredModel | None:
    """The model named `model` (or the instance) if `actor` may view it; None for missing and
    invisible alike, so an error never tells a stranger that a model exists."""
    name = model.name if isinstance(model, RegisteredModel) else model
    if not isinstance(name, str) or not name:
        return None
    return permissions.restrict(actor, "view", RegisteredModel.objects.filter(name=name)).first()


def _number(value) -> int | None:
    if isinstance(value, ModelVersion):
        return value.version
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _clean_route(actor, position: int, raw) -> RouteSpec:
    if not isinstance(raw, dict):
        raise _fail(position, "", "give an object with name, model, version or alias, weight and mode.")
    name = raw.get("name")
    unknown = sorted(str(k) for k in set(raw) - ROUTE_KEYS)
    if unknown:
        raise _fail(position, "", f"unknown field(s) {', '.join(unknown)}.")
    if not isinstance(name, str) or not name:
        raise _fail(position, "", "give the route a name.")
    try:
        _alias_validator(name)
    except ValidationError as exc:
        raise _fail(position, "", f"name {name!r}: {' '.join(exc.messages)}") from None
    mode = raw.get("mode") or Route.Mode.LIVE
    if mode not in MODES:
        raise _fail(position, name, f"mode must be one of {', '.join(MODES)}.")
    weight = raw.get("weight", 100)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise _fail(position, name, "weight must be a whole number from 0 to 100 (percent).")
    version_given = raw.get("version") not in (None, "")
    alias = raw.get("alias") or ""
    if version_given == bool(alias):
        raise _fail(position, name, "give exactly one of version and alias.")
    model = _visible_model(actor, raw.get("model"))
    if model is None:
        raise _fail(position, name, f"no model called {raw.get('model')!r} that you can see.")
    version = None
    if version_given:
        number = _number(raw.get("version"))
        version = ModelVersion.objects.filter(model=model, version=number).first() if number else None
        if version is None:
            raise _fail(position, name, f"model {model.name} has no version {raw.get('version')!r}.")
    elif not isinstance(alias, str) or not Alias.objects.filter(model=model, name=alias).exists():
        raise _fail(position, name, f"model {model.name} has no alias {alias!r}.")
    return RouteSpec(name=name, model=model, version=version, alias=alias, weight=weight, mode=mode)


def clean_routes(*, actor, routes) -> list[RouteSpec]:
    """Validate a whole route list (ValidationError under `routes`, naming the route and problem)."""
    if not isinstance(routes, list | tuple) or not routes:
        raise ValidationError({"routes": ["Give at least one route."]})
    if len(routes) > MAX_ROUTES:
        raise ValidationError({"routes": [f"At most {MAX_ROUTES} routes."]})
    specs = [_clean_route(actor, i, raw) for i, raw in enumerate(routes)]
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in seen:
            raise _fail(i, spec.name, "another route has this name; route names are unique per endpoint.")
        seen.add(spec.name)
    live = [s for s in specs if s.mode == Route.Mode.LIVE]
    if not live:
        raise ValidationError({"routes": ["Give at least one live route; shadow routes only copy live traffic."]})
    total = sum(s.weight for s in live)
    if total != 100:
        raise ValidationError({"routes": [f"Live route weights sum to {total}; they must sum to 100."]})
    return specs


def _clean_sample_rate(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ValidationError({"log_sample_rate": ["Give a share from 0 to 1 (0.1 logs one request in ten)."]})
    return float(value)


def _clean_region(region) -> str:
    try:
        return validate_region(region) or "default"
    except (ValueError, TypeError) as exc:
        raise ValidationError({"region": [str(exc)]}) from None


def _clean_description(value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({"description": ["Give text."]})
    if len(value) > 5000:
        raise ValidationError({"description": ["At most 5,000 characters."]})
    return value.strip()


# --- writes ---------------------------------------------------------------------------------


def _write_routes(endpoint: Endpoint, specs: list[RouteSpec]) -> None:
    """Make the endpoint's routes exactly `specs`: a kept name keeps its row (and its id)."""
    current = {r.name: r for r in Route.objects.filter(endpoint=endpoint)}
    for route in current.values():
        if route.name not in {s.name for s in specs}:
            route.delete()
    for position, spec in enumerate(specs):
        fields = {
            "model": spec.model, "version": spec.version, "alias": spec.alias,
            "weight": spec.weight, "mode": spec.mode, "position": position,
        }  # fmt: skip
        route = current.get(spec.name)
        if route is None:
            Route.objects.create(endpoint=endpoint, name=spec.name, **fields)
        elif any(getattr(route, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(route, key, value)
            route.save()


def _routes_summary(endpoint: Endpoint) -> list[dict]:
    routes = Route.objects.filter(endpoint=endpoint).select_related("model", "version").order_by("position", "name")
    return [route_summary(r) for r in routes]


def endpoint_create(*, actor, region: str = "default", routes, **fields) -> Endpoint:
    """Create an endpoint owned by `actor` (role right `add`): `name`, `description`, `team`,
    `log_sample_rate`, `rollout` as `_endpoint_create` takes them. A route serving a version pinned
    to another region than the endpoint's is refused first (409, audited: services/residency.py)."""
    permissions.require(actor, "add", Endpoint)
    specs = clean_routes(actor=actor, routes=routes)
    serving_residency.check_routes(actor=actor, region=_clean_region(region), specs=specs)
    return _endpoint_create(actor=actor, region=region, specs=specs, **fields)


@transaction.atomic
def _endpoint_create(
    *,
    actor,
    name: str,
    description: str = "",
    region: str = "default",
    specs,
    team: str | None = None,
    log_sample_rate: float | None = None,
    rollout: dict | None = None,
) -> Endpoint:
    """Create an endpoint owned by `actor` (role right `add`). `team` is the slug of a team the actor
    is in: it becomes a viewer. `rollout` is a canary plan for moves of the alias its baseline
    follows (services/rollouts.py); {} switches at once. `specs`: the routes as `clean_routes` made
    them (endpoint_create checked the right and the routes first). Raises ValidationError for bad fields."""
    check_name(name, route_prefixes=NAME_ROUTE_PREFIXES)
    found_team = team_for_create(actor=actor, slug=team)
    fields = {
        "description": _clean_description(description),
        "region": _clean_region(region),
        "log_sample_rate": _clean_sample_rate(
            settings.SERVING_LOG_SAMPLE_RATE if log_sample_rate is None else log_sample_rate
        ),
        "rollout": rollout_clean(rollout),
    }
    if Endpoint.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"An endpoint called {name!r} already exists; pick another name."]})
    endpoint = Endpoint.objects.create(name=name, owner=actor, team=found_team, **fields)
    permissions.grant_owner(endpoint)
    share_with_team_on_create(endpoint, found_team)
    _write_routes(endpoint, specs)
    audit_event(
        actor=actor, event="endpoint.create", obj=endpoint,
        data={"before": None, "after": {**fields, "routes": [s.as_audit() for s in specs]}},
    )  # fmt: skip
    return endpoint


def _refuse_during_canary(endpoint: Endpoint) -> None:
    if Canary.objects.filter(endpoint=endpoint, state=Canary.State.RUNNING).exists():
        raise Conflict(
            f"A canary is running on {endpoint.name}; its routes change only through the ramp. "
            f"Abort it first: POST /api/v1/endpoints/{endpoint.name}/canary/abort"
        )


def endpoint_update(*, actor, endpoint: Endpoint, **changes) -> Endpoint:
    """Change description, log_sample_rate, rollout and/or routes (the whole new list replaces the old one).
    Needs `change` on the endpoint; Conflict when routes would change while a canary runs, and
    (audited) when a route would serve a version pinned to another region."""
    permissions.require(actor, "change", endpoint)
    specs = None
    if "routes" in changes and not set(changes) - UPDATABLE:
        specs = clean_routes(actor=actor, routes=changes["routes"])
        serving_residency.check_routes(actor=actor, region=endpoint.region, specs=specs)
    return _endpoint_update(actor=actor, endpoint=endpoint, specs=specs, **changes)


@transaction.atomic
def _endpoint_update(*, actor, endpoint: Endpoint, specs=None, **changes) -> Endpoint:
    """The body of endpoint_update (which checked the right, and cleaned the routes into `specs`)."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValidationError({f: ["This field cannot be changed."] for f in sorted(unknown)})
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.archived_at is not None:
        raise Conflict(f"Endpoint {endpoint.name} is archived; it cannot be changed.")
    before = {
        "description": endpoint.description,
        "log_sample_rate": endpoint.log_sample_rate,
        "rollout": endpoint.rollout,
    }
    after = dict(before)
    if "rollout" in changes:
        after["rollout"] = rollout_clean(changes["rollout"])
    if "description" in changes:
        after["description"] = _clean_description(changes["description"])
    if "log_sample_rate" in changes:
        after["log_sample_rate"] = _clean_sample_rate(changes["log_sample_rate"])
    before_routes = _routes_summary(endpoint)
    after_routes = before_routes
    if "routes" in changes:
        specs = specs if specs is not None else clean_routes(actor=actor, routes=changes["routes"])
        after_routes = [s.as_audit() for s in specs]
        if after_routes != before_routes:
            _refuse_during_canary(endpoint)
            _write_routes(endpoint, specs)
    if after == before and after_routes == before_routes:
        return endpoint  # nothing changed: nothing to record
    endpoint.description, endpoint.log_sample_rate = after["description"], after["log_sample_rate"]
    endpoint.rollout = after["rollout"]
    endpoint.save()
    audit_event(
        actor=actor, event="endpoint.update", obj=endpoint,
        data={"before": {**before, "routes": before_routes}, "after": {**after, "routes": after_routes}},
    )  # fmt: skip
    return endpoint


@transaction.atomic
def endpoint_archive(*, actor, endpoint: Endpoint) -> Endpoint:
    """Archive: it stops answering predictions; logs and windows stay. Needs `delete` (the owner).
    A running canary is refused (Conflict): abort it first."""
    permissions.require(actor, "delete", endpoint)
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.archived_at is None:
        _refuse_during_canary(endpoint)
        endpoint.archived_at = timezone.now()
        endpoint.save()
        audit_event(
            actor=actor, event="endpoint.archive", obj=endpoint,
            data={"before": {"archived": False}, "after": {"archived": True}, "routes": _routes_summary(endpoint)},
        )  # fmt: skip
    return endpoint
