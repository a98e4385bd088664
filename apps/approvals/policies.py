"""Gate policies: which one applies, how their fields are validated, the default rows, the window.

Read by the services (which snapshot the policy into each request) and by the API; the writes
(`policy_create` / `policy_update` / `policy_delete`) are in `apps.approvals.services`.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from apps.approvals.models import CHECK_NAMES, GatePolicy
from apps.catalog.models import RegisteredModel

POLICY_FIELDS = ("approver_groups", "approvals_required", "checks", "change_window", "expiry_hours")
# The parameters each check reads (apps/approvals/checks.py); anything else is a typo, refused.
CHECK_PARAMS = {
    "metric_threshold": {"metric", "max_drop", "min", "lower_is_better"},
    "onnx_parity": {"max_abs_diff"},
    "model_card": set(),
    "artifact_digest": set(),
    "lineage": set(),
    "residency": {"allowed_regions"},
    "open_alerts": {"severity"},
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def policy_for(model: RegisteredModel, alias: str) -> GatePolicy | None:
    """The model's own policy for `alias`, else the default one (model null), else None."""
    found = list(GatePolicy.objects.filter(alias=alias, model=model).select_related("model")[:1])
    if not found:
        found = list(GatePolicy.objects.filter(alias=alias, model__isnull=True)[:1])
    return found[0] if found else None


def seed_default_policies(sender=None, **_kwargs) -> None:
    """post_migrate: a default row per alias of `settings.APPROVAL_DEFAULT_POLICIES` when missing
    (never overwriting a row a platform admin has edited). Runs after the last app's migrate, as
    `sync_roles` does (connected before this), so the role groups the policies name exist."""
    if sender is not None and sender is not list(django_apps.get_app_configs())[-1]:
        return
    for alias, fields in settings.APPROVAL_DEFAULT_POLICIES.items():
        if not GatePolicy.objects.filter(alias=alias, model__isnull=True).exists():
            GatePolicy.objects.create(alias=alias, model=None, **clean_policy_fields(fields, partial=False))


# --- validation -------------------------------------------------------------------------------


def clean_policy_fields(fields: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate the policy fields given (all of them unless `partial`); ValidationError per field."""
    unknown = sorted(set(fields) - set(POLICY_FIELDS))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    cleaners = {
        "approver_groups": _clean_groups,
        "approvals_required": lambda v: _clean_int(v, "approvals_required", 1, 20),
        "checks": _clean_checks,
        "change_window": _clean_window,
        "expiry_hours": lambda v: _clean_int(v, "expiry_hours", 1, 90 * 24),
    }
    defaults = {"checks": [], "change_window": None, "expiry_hours": 72, "approvals_required": 1}
    out, errors = {}, {}
    for name, clean in cleaners.items():
        if name not in fields and (partial or name in defaults):
            if not partial:
                out[name] = defaults[name]
            continue
        try:
            out[name] = clean(fields.get(name))
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)
    return out


def _clean_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"Give a whole number from {low} to {high}.")
    return value


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _clean_groups(value) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(g, str) and g for g in value):
        raise ValidationError('Give a non-empty list of group names, e.g. ["approvers"].')
    names = sorted(set(value))
    missing = sorted(set(names) - set(Group.objects.filter(name__in=names).values_list("name", flat=True)))
    if missing:
        raise ValidationError(f"No group called {', '.join(missing)}.")
    return names


def _clean_checks(value) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 50:
        raise ValidationError('Give a list of {"name", "params"} objects (at most 50).')
    out = []
    for position, check in enumerate(value):
        if not isinstance(check, dict) or set(check) - {"name", "params"} or check.get("name") not in CHECK_NAMES:
            raise ValidationError(
                f'Check {position}: give {{"name", "params"}} with name one of {", ".join(CHECK_NAMES)}.'
            )
        params = check.get("params") or {}
        if not isinstance(params, dict):
            raise ValidationError(f"Check {position}: params is an object.")
        unknown = sorted(set(params) - CHECK_PARAMS[check["name"]])
        if unknown:
            known = ", ".join(sorted(CHECK_PARAMS[check["name"]])) or "none"
            raise ValidationError(f"Check {position}: unknown params {', '.join(unknown)} (known: {known}).")
        metric = params.get("metric")
        if check["name"] == "metric_threshold" and not (isinstance(metric, str) and 0 < len(metric) <= 250):
            raise ValidationError(f'Check {position}: metric_threshold needs params {{"metric": "val_auc", ...}}.')
        for key in ("max_drop", "min", "max_abs_diff"):
            if key in params and not _finite(params[key]):
                raise ValidationError(f"Check {position}: {key} is a finite number.")
        regions = params.get("allowed_regions", [])
        if not isinstance(regions, list) or not all(isinstance(r, str) and 0 < len(r) <= 41 for r in regions):
            raise ValidationError(f'Check {position}: allowed_regions is a list of region names, e.g. ["uae-north"].')
        if not isinstance(params.get("lower_is_better", False), bool):
            raise ValidationError(f"Check {position}: lower_is_better is true or false.")
        out.append({"name": check["name"], "params": params})
    return out


def _weekday(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6


def _clean_window(value) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"days", "hours", "timezone"}:
        raise ValidationError('Give {"days": [0..6], "hours": [start, end], "timezone": "Asia/Dubai"} or null.')
    days = value.get("days", list(range(7)))
    hours = value.get("hours", [0, 24])
    if not isinstance(days, list) or not days or not all(_weekday(d) for d in days):
        raise ValidationError("days: weekday numbers, 0 (Monday) to 6 (Sunday).")
    if (
        not isinstance(hours, list)
        or len(hours) != 2
        or not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 24 for h in hours)
        or hours[0] >= hours[1]
    ):
        raise ValidationError("hours: [start, end], whole hours 0-24 with start before end.")
    zone = value.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError(f"timezone: {zone!r} is not a known time zone (e.g. Asia/Dubai).") from None
    return {"days": sorted(set(days)), "hours": hours, "timezone": zone}


# --- the change window ------------------------------------------------------------------------


def outside_window(window: dict | None, when: datetime) -> str | None:
    """None when `when` is inside the change window (or there is none); else a sentence naming it."""
    if not window:
        return None
    local = when.astimezone(ZoneInfo(window["timezone"]))
    start, end = window["hours"]
    if local.weekday() in window["days"] and start <= local.hour < end:
        return None
    days = ", ".join(WEEKDAYS[d] for d in window["days"])
    return (
        f"It is {local:%A %H:%M} in {window['timezone']}, outside the change window "
        f"({days}, {start:02d}:00-{end:02d}:00 {window['timezone']}); approve inside it, "
        "or file an emergency change."
    )
