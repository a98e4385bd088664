"""Reads for canaries and A/B reports: a route's traffic windows and outcome feedback, summed in
SQL, and an endpoint's newest canary. No permission checks here: every caller has fetched the
endpoint through `selectors.endpoint_for` (or is the system's canary evaluator)."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, Sum

from apps.serving import abtest, histogram
from apps.serving.abtest import Group
from apps.serving.models import Canary, Endpoint, Feedback, Route, TrafficWindow


def canary_latest(endpoint: Endpoint) -> Canary | None:
    """The endpoint's newest canary (running or finished), with its version and starter."""
    return (
        Canary.objects.filter(endpoint=endpoint)
        .select_related("version__model", "started_by")
        .order_by("-started_at", "-pk")
        .first()
    )


def route_window_stats(endpoint_id: int, route: str, since: datetime, version_id: int | None = None) -> dict:
    """Live requests, errors, error rate and p95 latency (ms) of one route from the windows whose
    minute starts at or after `since` (the minute `since` falls in counts too), optionally of one version."""
    windows = TrafficWindow.objects.filter(
        endpoint_id=endpoint_id, route=route, mode=Route.Mode.LIVE, minute__gte=since.replace(second=0, microsecond=0)
    )
    if version_id is not None:
        windows = windows.filter(version_id=version_id)
    hist = histogram.empty()
    requests = errors = 0
    for row in windows.values("requests", "errors", "latency_hist"):
        requests += row["requests"]
        errors += row["errors"]
        hist = histogram.add(hist, row["latency_hist"] or [])
    return {
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "p95_ms": histogram.quantile(hist, 0.95),
    }


def _group(row: dict) -> Group:
    return Group(
        n=row["n"] or 0, total=row["total"] or 0.0, total_sq=row["total_sq"] or 0.0, binary=not row["non_binary"]
    )


AGGREGATES = {
    "n": Count("pk"),
    "total": Sum("outcome"),
    "total_sq": Sum(F("outcome") * F("outcome")),
    "non_binary": Count("pk", filter=~Q(outcome__in=(0.0, 1.0))),
}


def route_outcomes(endpoint_id: int, route: str, since: datetime, version_id: int | None = None) -> Group:
    """The outcomes recorded for predictions one route answered at or after `since`."""
    feedback = Feedback.objects.filter(endpoint_id=endpoint_id, route=route, predicted_at__gte=since)
    if version_id is not None:
        feedback = feedback.filter(version_id=version_id)
    return _group(feedback.aggregate(**AGGREGATES))


def outcomes_by_route(endpoint: Endpoint, since: datetime | None = None) -> dict[str, Group]:
    """Per route name, the outcome aggregates of its predictions (one query)."""
    feedback = Feedback.objects.filter(endpoint=endpoint)
    if since is not None:
        feedback = feedback.filter(predicted_at__gte=since)
    rows = feedback.values("route").annotate(**AGGREGATES).order_by("route")
    return {row["route"]: _group(row) for row in rows}


# --- A/B report -----------------------------------------------------------------------------

MIN_REPORT_N = 30  # below this many outcomes a route's interval says little, whatever min_effect is


def _route_entry(name: str, route: Route | None, group: Group, binary: bool, baseline: Group | None, min_effect):
    ci = abtest.interval(group, binary) if group.n else None
    needed = abtest.sample_size(baseline or group, group, binary, min_effect) if group.n else None
    entry = {
        "route": name,
        "live": route is not None,
        "weight": route.weight if route is not None else 0,
        "n": group.n,
        ("rate" if binary else "mean"): group.mean,
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "p_value": None,
        "difference": None,
        "sample_size_needed": needed,
        "more_needed": max(0, needed - group.n) if needed else None,
    }
    entry["enough_data"] = group.n >= max(MIN_REPORT_N, needed or 0)
    return entry


def _metric(groups: dict[str, Group], metric: str) -> bool:
    """True for rates (every outcome 0/1), False for means; `metric` 'rate' or 'mean' insists."""
    binary = all(g.binary for g in groups.values())
    if metric == "rate" and not binary:
        raise ValidationError({"metric": ["Some outcomes are not 0 or 1: there is no rate; use metric=mean."]})
    return binary if metric in ("", "auto") else metric == "rate"


def ab_report_of(endpoint: Endpoint, *, metric: str = "", min_effect: float | None = None, since=None) -> dict:
    """Per live route (largest weight first; routes no longer live that still have outcomes after
    them): outcome count, rate or mean with a 95 % interval, the p-value against the baseline (the
    live route with the largest weight), the sample size each route needs for `min_effect`, and a
    verdict in words comparing the baseline with the next route that has data."""
    live = sorted(
        (r for r in endpoint.routes.all() if r.mode == Route.Mode.LIVE), key=lambda r: (-r.weight, r.position, r.name)
    )
    groups = outcomes_by_route(endpoint, since)
    binary = _metric(groups, metric)
    names = [r.name for r in live] + sorted(set(groups) - {r.name for r in live})
    by_name = {r.name: r for r in live}
    empty = Group(0, 0.0, 0.0)
    with_data = [n for n in names if groups.get(n, empty).n]
    base_name = live[0].name if live and groups.get(live[0].name, empty).n else (with_data[0] if with_data else None)
    base = groups.get(base_name, empty) if base_name else None
    entries = []
    for name in names:
        group = groups.get(name, empty)
        entry = _route_entry(name, by_name.get(name), group, binary, base, min_effect)
        if base_name and name != base_name and group.n and base.n:
            entry["p_value"] = abtest.p_value(base, group, binary)
            entry["difference"] = group.mean - base.mean
        entries.append(entry)
    other = next((e for e in entries if e["route"] != base_name and e["n"]), None)
    return {
        "metric": "rate" if binary else "mean",
        "test": "two_proportion_z" if binary else "welch_t",
        "min_effect": min_effect,
        "since": since,
        "baseline": base_name,
        "compared": [base_name, other["route"]] if other else None,
        "p_value": other["p_value"] if other else None,
        "routes": entries,
        "verdict": verdict(entries, base_name, other, binary, min_effect),
    }


def _difference_text(difference: float, binary: bool) -> str:
    if binary:
        return f"converts {abs(difference) * 100:.1f} points {'better' if difference > 0 else 'worse'}"
    return f"has a mean outcome {abs(difference):.3g} {'higher' if difference > 0 else 'lower'}"


def verdict(entries: list[dict], base_name: str | None, other: dict | None, binary: bool, min_effect) -> str:
    """The comparison in words, or what is missing for one."""
    if other is None or other["p_value"] is None:
        with_data = sum(1 for e in entries if e["n"])
        return (
            f"Too little data to compare routes: {with_data} route(s) have outcomes; "
            "send feedback for predictions of at least two routes (two outcomes each for means)."
        )
    p = other["p_value"]
    text = f"Route {other['route']} {_difference_text(other['difference'], binary)} than {base_name}, p = {p:.3g}; "
    text += "significant at 5 %." if p < abtest.ALPHA else "not significant at 5 %."
    short = [e for e in entries if e["n"] and not e["enough_data"]]
    if short:
        parts = ", ".join(f"{e['route']} {e['n']:,}" for e in short)
        need = (
            f" ({short[0]['sample_size_needed']:,} per route needed for {min_effect:g})"
            if min_effect and short[0]["sample_size_needed"]
            else ""
        )
        text += f" Too little data to trust it yet: {parts} outcomes{need}."
    return text
