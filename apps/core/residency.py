"""Residency: which regions exist, whether this portal may hold or process data of a region, and the
one audited refusal every app raises.

A region names where data lives (`uae-north`); "default" means unpinned. This process runs in
`settings.PORTAL_REGION`. The rule (issue 17): nothing pinned to a region is stored, trained,
served or exported outside it. Feature views keep their stricter rule (their "default" is the
default portal's own store, apps/features/offline.py) but refuse through `refuse` too.

Refusals raise `ResidencyError` (403: this portal may not touch it) or `RegionMismatch` (409: two
objects of different regions cannot be combined), both audited as `residency.refused` with what,
where and why. Nothing here imports a domain app.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.core.audit import audit_event
from apps.core.errors import RegionMismatch, ResidencyError
from apps.core.queues import validate_region

UNPINNED = "default"
REFUSED_EVENT = "residency.refused"
# Apps that own objects other apps refer to loosely (a version's lineage names its run by id) tell
# the others the region of such an object: kind -> resolver(key) -> region or None.
_SOURCE_RESOLVERS: dict[str, Callable[[str], str | None]] = {}


def register_source(kind: str, resolver: Callable[[str], str | None]) -> None:
    """Called by the owning app's `ready()` (experiments: kind "run")."""
    _SOURCE_RESOLVERS[kind] = resolver


# Apps that serve what an alias points at (serving: endpoints following it) check a move of the
# alias before it happens: guard(actor=, model=, alias=, version=) refuses through `refuse`.
_ALIAS_GUARDS: list[Callable[..., None]] = []


def register_alias_guard(guard: Callable[..., None]) -> None:
    """Called by the serving app's `ready()`; the catalog runs the guards without importing it."""
    if guard not in _ALIAS_GUARDS:
        _ALIAS_GUARDS.append(guard)


def check_alias_move(*, actor, model, alias: str, version) -> None:
    """Refuse (409, audited) pointing `alias` of `model` at `version` when something that follows the
    alias would then serve it outside its region. Call it before opening a transaction, so that
    the refusal's audit entry is not rolled back. Unpinned versions move anywhere."""
    if not is_pinned(version.region):
        return
    for guard in _ALIAS_GUARDS:
        guard(actor=actor, model=model, alias=alias, version=version)


def source_region(kind: str, key) -> str | None:
    """The region of the `kind` object named `key`, when its app registered a resolver and it exists."""
    resolver = _SOURCE_RESOLVERS.get(kind)
    if resolver is None or key in (None, ""):
        return None
    return resolver(str(key))


def process_region() -> str:
    """The region this portal process runs in (PORTAL_REGION)."""
    return settings.PORTAL_REGION


def configured_regions() -> list[str]:
    """The regions objects may be pinned to: PORTAL_REGIONS, plus "default" and this process's own."""
    return list(dict.fromkeys([UNPINNED, process_region(), *settings.PORTAL_REGIONS]))


def is_pinned(region: str | None) -> bool:
    return bool(region) and region != UNPINNED


def clean_region(region, *, field: str = "region") -> str:
    """A configured region name ("" or None = "default"); a field error naming the choices otherwise."""
    try:
        cleaned = validate_region(region if isinstance(region, str) or region is None else str(region)) or UNPINNED
    except ValueError as exc:
        raise ValidationError({field: [str(exc)]}) from None
    regions = configured_regions()
    if cleaned not in regions:
        raise ValidationError(
            {field: [f"Region {cleaned!r} is not configured here; use one of {', '.join(regions)} (PORTAL_REGIONS)."]}
        )
    return cleaned


def may_hold(region: str | None) -> bool:
    """True when this portal may store or process data of `region`: unpinned, or its own region."""
    return not is_pinned(region) or region == process_region()


def refuse(
    *, actor, obj, region: str, action: str, why: str, request=None, mismatch: bool = False, event: str = REFUSED_EVENT
):
    """Audit the refusal (what, where, why) and raise it: `RegionMismatch` when `mismatch`, else
    `ResidencyError`. Never returns."""
    audit_refusal(actor=actor, obj=obj, region=region, action=action, why=why, request=request, event=event)
    raise (RegionMismatch if mismatch else ResidencyError)(why)


def audit_refusal(
    *, actor, obj, region: str, action: str, why: str, request=None, event: str = REFUSED_EVENT, extra=None
):
    """The audit entry of a refusal (what, where, why, plus `extra`), for callers that answer the
    refusal themselves (a 400 naming a field, the predict path's aggregated 403)."""
    here = process_region()
    return audit_event(
        actor=actor,
        event=event,
        obj=obj,
        data={
            "what": f"{obj._meta.label_lower}:{obj.pk}" if obj is not None and obj.pk else str(obj),
            "action": action,
            "region": region,
            "where": here,
            "process_region": here,
            "why": why,
            **(extra or {}),
        },
        request=request,
    )


def check_held_here(region: str | None, *, actor, obj, action: str, request=None) -> None:
    """Refuse (403, audited) storing, reading or exporting `obj` of `region` in this portal unless
    `may_hold(region)`."""
    if may_hold(region):
        return
    here = process_region()
    refuse(
        actor=actor,
        obj=obj,
        region=region,
        action=action,
        request=request,
        why=f"{obj} is pinned to region {region!r}, but this portal runs in region {here!r}: it cannot {action} it "
        f"here. Use the portal of region {region!r}.",
    )


def check_same_region(
    pinned: str | None, target: str | None, *, actor, obj, action: str, target_label: str, request=None
) -> None:
    """Refuse (409, audited) putting `obj`, pinned to `pinned`, into something of region `target`
    (an endpoint, a model, an experiment). Unpinned objects go anywhere."""
    if not is_pinned(pinned) or pinned == (target or UNPINNED):
        return
    refuse(
        actor=actor,
        obj=obj,
        region=pinned,
        action=action,
        request=request,
        mismatch=True,
        why=f"{obj} is pinned to region {pinned!r}; it cannot {action} {target_label} of region "
        f"{target or UNPINNED!r}. Use one of region {pinned!r}.",
    )
