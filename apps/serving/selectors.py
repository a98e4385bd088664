"""Reads of serving: endpoints (with their routes), canaries, traffic windows, feedback and scoring
jobs, always through the decision point (apps/core/permissions.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from apps.catalog.models import Alias
from apps.core.errors import NotFound
from apps.core.permissions import Action, require, restrict
from apps.serving import histogram
from apps.serving.models import Endpoint, Route, TrafficWindow


def endpoint_for(user, name: str, action: Action = "view") -> Endpoint:
    """The endpoint called `name` if `user` may view it (NotFound otherwise), then `require(action)`."""
    routes = Prefetch("routes", queryset=Route.objects.select_related("model", "version").order_by("position", "name"))
    found = (
        restrict(user, "view", Endpoint.objects.select_related("owner", "team").prefetch_related(routes))
        .filter(name=name if isinstance(name, str) else "")
        .first()
    )
    if found is None:
        raise NotFound("No endpoint matches the given query.")
    require(user, action, found)
    return found


def routes_of(endpoint: Endpoint) -> QuerySet[Route]:
    return Route.objects.filter(endpoint=endpoint).select_related("model", "version").order_by("position", "name")


# --- endpoint lists, serving versions, traffic ------------------------------------------------

# Past this many minutes the traffic summary refuses (a day of one-minute windows per route).
TRAFFIC_MAX_MINUTES = 24 * 60


def endpoints_visible(user, filters: dict) -> QuerySet[Endpoint]:
    """The endpoint list for `user`: one query, routes (with model and version) prefetched.
    `filters` is a validated query string: q, model, region, archived (absent keys do not filter);
    `with_serving_versions` resolves a page's alias routes in one more query."""
    routes = Prefetch("routes", queryset=Route.objects.select_related("model", "version").order_by("position", "name"))
    endpoints = restrict(user, "view", Endpoint.objects.select_related("owner", "team").prefetch_related(routes))
    if not filters.get("archived"):
        endpoints = endpoints.filter(archived_at__isnull=True)
    if q := (filters.get("q") or "").strip():
        endpoints = endpoints.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if model := (filters.get("model") or "").strip():
        endpoints = endpoints.filter(Exists(Route.objects.filter(endpoint=OuterRef("pk"), model__name=model)))
    if region := (filters.get("region") or "").strip():
        endpoints = endpoints.filter(region=region)
    return endpoints.order_by("name", "pk")


def with_serving_versions(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Set `route.serving_version` (the version number each route serves now: its pinned version or
    where its alias points; None for an alias that no longer exists) on every prefetched route, in
    one query for all alias routes."""
    endpoints = list(endpoints)
    routes = [r for e in endpoints for r in e.routes.all()]
    wanted = Q()
    for route in routes:
        if route.alias:
            wanted |= Q(model_id=route.model_id, name=route.alias)
    pointers = {}
    if wanted:
        pointers = {
            (a.model_id, a.name): a.version.version for a in Alias.objects.filter(wanted).select_related("version")
        }
    for route in routes:
        route.serving_version = (
            route.version.version if route.version_id else pointers.get((route.model_id, route.alias))
        )
    return endpoints


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _summary(windows: list[TrafficWindow]) -> dict:
    hist: list[int] = histogram.empty()
    for w in windows:
        hist = histogram.add(hist, w.latency_hist or [])
    requests = sum(w.requests for w in windows)
    errors = sum(w.errors for w in windows)
    compared = sum(w.shadow_compared for w in windows)
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": _ratio(errors, requests),
        "rows": sum(w.rows for w in windows),
        "mean_latency_ms": _ratio(sum(w.latency_sum_ms for w in windows), requests),
        "p50_ms": histogram.quantile(hist, 0.5),
        "p95_ms": histogram.quantile(hist, 0.95),
        "shadow_compared": compared,
        "shadow_agreement_rate": _ratio(sum(w.shadow_agreed for w in windows), compared),
        "shadow_mean_abs_diff": _ratio(sum(w.shadow_abs_diff_sum for w in windows), compared),
        "shadow_dropped": sum(w.shadow_dropped for w in windows),
        "logs_dropped": sum(w.logs_dropped for w in windows),
    }


def traffic_of(endpoint: Endpoint, minutes: int = 60) -> dict:
    """What the endpoint's traffic windows of the last `minutes` say, per route (with the versions
    it served) and per route and minute (requests, errors, p50/p95 latency, shadow agreement).
    The caller has fetched `endpoint` through `endpoint_for`."""
    minutes = max(1, min(int(minutes), TRAFFIC_MAX_MINUTES))
    since = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    windows = list(
        TrafficWindow.objects.filter(endpoint=endpoint, minute__gte=since)
        .select_related("version")
        .order_by("minute", "route", "version_id")
    )
    by_route: dict[str, list[TrafficWindow]] = {}
    by_minute: dict[tuple[str, object], list[TrafficWindow]] = {}
    for w in windows:
        by_route.setdefault(w.route, []).append(w)
        by_minute.setdefault((w.route, w.minute), []).append(w)
    routes = [
        {
            "route": name,
            "mode": rows[-1].mode,
            "versions": sorted({w.version.version for w in rows}),
            **_summary(rows),
        }
        for name, rows in sorted(by_route.items())
    ]
    series = [{"route": route, "minute": minute, **_summary(rows)} for (route, minute), rows in by_minute.items()]
    return {"minutes": minutes, "since": since, "total": _summary(windows), "routes": routes, "series": series}


def requests_last_hour(endpoints: Iterable[Endpoint]) -> dict[int, int]:
    """Requests per endpoint id over the last hour, for a page of endpoints: one query."""
    since = timezone.now() - timedelta(hours=1)
    ids = [e.pk for e in endpoints]
    rows = (
        TrafficWindow.objects.filter(endpoint_id__in=ids, minute__gte=since, mode=Route.Mode.LIVE)
        .values("endpoint_id")
        .annotate(total=Sum("requests"))
    )
    return {row["endpoint_id"]: row["total"] for row in rows}
