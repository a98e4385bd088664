"""Residency of serving (issue 17): a version pinned to a region is served only by endpoints of that
region (where their prediction logs are kept) and scored only by jobs of that region.

The checks run before the services open their transactions, so that the refusal's audit entry
(`residency.refused`, apps/core/residency.py) is not rolled back with them. Unpinned versions
are served anywhere.

An alias move is checked too (`check_alias_move`, run by the catalog through
`residency.register_alias_guard`): an endpoint of another region must not start serving a pinned
version because the alias it follows moved. And a portal process that may not hold a version's
region does not serve it (`serve_refusal`, decided once per endpoint plan; the predict path
answers 403 and audits at most one entry per endpoint and version per window).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone

from apps.catalog.models import Alias, ModelVersion
from apps.core import residency
from apps.core.audit import system_user
from apps.core.models import AuditEntry
from apps.serving.models import Canary, Endpoint, Route

MAX_NAMED = 10  # endpoints named in a refused alias move's message


def route_version(spec) -> ModelVersion | None:
    """The version a route (or a validated RouteSpec) serves now: its pinned version, or its alias's."""
    if spec.version is not None:
        return spec.version
    alias = Alias.objects.filter(model=spec.model, name=spec.alias).select_related("version").first()
    return alias.version if alias is not None else None


def check_routes(*, actor, region: str, specs) -> None:
    """Refuse (409, audited) routes serving a version pinned to another region than the endpoint's."""
    for spec in specs:
        version = route_version(spec)
        if version is not None:
            check_version(actor=actor, version=version, region=region)


def check_version(*, actor, version: ModelVersion, region: str) -> None:
    residency.check_same_region(
        version.region, region, actor=actor, obj=version, action="be served", target_label="on an endpoint"
    )


def check_canary(*, actor, endpoint: Endpoint, version) -> None:
    """A canary of `version` (a number of the baseline route's model) on `endpoint`: checked for the
    model of every live route (the baseline is one of them; the service picks it under its lock)."""
    number = version.version if isinstance(version, ModelVersion) else version
    if not isinstance(number, int) or isinstance(number, bool):
        return  # the service answers this with its own error
    live = Route.objects.filter(endpoint=endpoint, mode=Route.Mode.LIVE, weight__gt=0).values("model")
    for found in ModelVersion.objects.filter(model__in=live, version=number).order_by("pk"):
        check_version(actor=actor, version=found, region=endpoint.region)


# --- alias moves ---------------------------------------------------------------------------------
def alias_followers(model_id: int, alias: str) -> list[Endpoint]:
    """Endpoints (not archived) that serve what `alias` of the model points at: a route (live or
    shadow, any weight) follows it, or a running ramp of an alias move will make its baseline
    follow it again on completion."""
    by_route = Route.objects.filter(model_id=model_id, alias=alias).values("endpoint_id")
    by_ramp = Canary.objects.filter(state=Canary.State.RUNNING, follow_alias=alias, version__model_id=model_id).values(
        "endpoint_id"
    )
    return list(
        Endpoint.objects.filter(archived_at__isnull=True)
        .filter(Q(pk__in=by_route) | Q(pk__in=by_ramp))
        .order_by("name")
    )


def check_alias_move(*, actor, model, alias: str, version: ModelVersion) -> None:
    """Refuse (409, audited) moving `alias` to `version`, pinned to a region, while an endpoint of
    another region follows the alias: it would serve the version outside its region."""
    if not residency.is_pinned(version.region):
        return
    elsewhere = [e for e in alias_followers(model.pk, alias) if (e.region or residency.UNPINNED) != version.region]
    if not elsewhere:
        return
    named = ", ".join(f"{e.name} (region {e.region or residency.UNPINNED!r})" for e in elsewhere[:MAX_NAMED])
    if len(elsewhere) > MAX_NAMED:
        named += f" and {len(elsewhere) - MAX_NAMED} more"
    residency.refuse(
        actor=actor,
        obj=version,
        region=version.region,
        action="move an alias to",
        mismatch=True,
        why=f"Version {version.version} of model {model.name!r} is pinned to region {version.region!r}, but "
        f"endpoint(s) {named} follow alias {alias!r} and would serve it outside that region. The alias did not "
        f"move. Point those endpoints' routes at a version or alias of their own region first, or move "
        f"{alias!r} to a version of their region.",
    )


# --- serving in this process ---------------------------------------------------------------------
def serve_refusal(version: ModelVersion, model_name: str) -> str:
    """Why this portal process may not serve `version` ("" when it may). Decided once per endpoint
    plan (apps/serving/inference/cache.py), never per request."""
    if residency.may_hold(version.region):
        return ""
    here = residency.process_region()
    return (
        f"Version {version.version} of model {model_name!r} is pinned to region {version.region!r}, but this "
        f"portal runs in region {here!r}: it cannot serve it here. Call the endpoint on the portal of region "
        f"{version.region!r}."
    )


class _Memo:
    """Per process: (endpoint id, version id) -> (monotonic time its audit is due again, refusals
    answered since this process last wrote an entry)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.due: dict[tuple[int, int], tuple[float, int]] = {}

    def forget(self) -> None:
        with self.lock:
            self.due.clear()


MEMO = _Memo()


def serve_audit_due(endpoint_id: int, version_id: int) -> bool:
    """Whether the next refusal of this version on this endpoint needs an audit entry written (or
    looked for): a dict look-up, no I/O."""
    hit = MEMO.due.get((endpoint_id, version_id))
    return hit is None or time.monotonic() >= hit[0]


def serve_refusal_counted(endpoint_id: int, version_id: int) -> bool:
    """Count one refused request; True when its audit is due (no I/O)."""
    key = (endpoint_id, version_id)
    with MEMO.lock:
        until, count = MEMO.due.get(key, (0.0, 0))
        MEMO.due[key] = (until, count + 1)
    return time.monotonic() >= until


def audit_serve_refusal(*, actor, endpoint_id: int, endpoint_name: str, version: ModelVersion, why: str) -> None:
    """Audit the refusals of serving `version` on the endpoint (`residency.refused`), aggregated: at
    most one entry per endpoint and version every PORTAL_RESIDENCY_AUDIT_WINDOW_S, whatever the
    number of requests and processes (an entry another process wrote in the window counts), so a
    flood of refused predictions cannot grow the audit table. The entry says how many requests this
    process refused since it last wrote one (`refusals`)."""
    window = settings.PORTAL_RESIDENCY_AUDIT_WINDOW_S
    key = (endpoint_id, version.pk)
    with MEMO.lock:
        until, count = MEMO.due.get(key, (0.0, 0))
        if time.monotonic() < until:
            return
        until = time.monotonic() + window
        MEMO.due[key] = (until, count)  # others in this process stop here meanwhile
    recent = AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(ModelVersion),
        object_pk=str(version.pk),
        additional_data__event=residency.REFUSED_EVENT,
        additional_data__endpoint_id=endpoint_id,
        timestamp__gte=timezone.now() - timedelta(seconds=window),
    )
    if recent.exists():
        return
    residency.audit_refusal(
        actor=actor if getattr(actor, "pk", None) else system_user(),
        obj=version,
        region=version.region,
        action="serve",
        why=why,
        extra={"endpoint": endpoint_name, "endpoint_id": endpoint_id, "refusals": max(count, 1), "window_s": window},
    )
    with MEMO.lock:  # these are recorded now; refusals counted meanwhile go into the next entry
        MEMO.due[key] = (until, max(MEMO.due.get(key, (until, count))[1] - count, 0))
