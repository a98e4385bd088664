"""Permission-aware reads for core objects (the audit trail)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.dateparse import parse_date, parse_datetime

from apps.core.audit import ChainReport, verify_chain
from apps.core.errors import Forbidden
from apps.core.models import AuditEntry
from apps.core.permissions import can, restrict

AUDIT_FILTERS = {
    "actor": "username of the actor",
    "action": "create, update, delete or access",
    "event": "explicit event name, e.g. login.failed or artifact.download",
    "object_type": "model name, e.g. registeredmodel",
    "object_pk": "primary key of the object",
    "since": "ISO date or datetime (inclusive)",
    "until": "ISO date or datetime (inclusive)",
    "q": "text search in the object description",
}
ACTIONS = {"create": 0, "update": 1, "delete": 2, "access": 3}


def can_read_audit(user) -> bool:
    """Platform admins and auditors (the role's global view permission on audit entries)."""
    return can(user, "view", AuditEntry)


def _when(value: str, end: bool) -> datetime | None:
    parsed = parse_datetime(value)
    if parsed is not None:
        return parsed
    day = parse_date(value)
    if day is None:
        raise ValueError(f"{value!r} is not an ISO date such as 2026-01-31")
    return datetime.combine(day, datetime.max.time() if end else datetime.min.time())


def audit_entries_visible(user, params) -> QuerySet[AuditEntry]:
    """Filtered audit entries, newest first, for readers of the trail (`Forbidden` for anyone
    else). Unparseable filters raise a `ValidationError` naming the filter."""
    if not can_read_audit(user):
        raise Forbidden("Only platform admins and auditors may read the audit trail.")
    qs = restrict(user, "view", AuditEntry.objects.select_related("actor", "content_type")).order_by("-id")
    try:
        if params.get("actor"):
            qs = qs.filter(actor__username=params["actor"])
        if params.get("action"):
            if params["action"] not in ACTIONS:
                raise ValidationError({"action": [f"Choose one of {', '.join(ACTIONS)}."]})
            qs = qs.filter(action=ACTIONS[params["action"]])
        if params.get("event"):
            qs = qs.filter(additional_data__event=params["event"])
        if params.get("object_type"):
            qs = qs.filter(content_type__model=params["object_type"].lower())
        if params.get("object_pk"):
            qs = qs.filter(object_pk=params["object_pk"])
        for name, lookup, end in (("since", "timestamp__gte", False), ("until", "timestamp__lte", True)):
            if params.get(name):
                try:
                    qs = qs.filter(**{lookup: _when(params[name], end=end)})
                except ValueError as exc:
                    raise ValidationError({name: [str(exc)]}) from None
        if params.get("q"):
            qs = qs.filter(object_repr__icontains=params["q"][:100])
    except (ValueError, OverflowError) as exc:
        raise ValidationError({"detail": [str(exc)]}) from None
    return qs


def audit_verify(*, actor) -> ChainReport:
    """Re-check the whole hash chain (readers of the trail only)."""
    if not can_read_audit(actor):
        raise Forbidden("Only platform admins and auditors may verify the audit trail.")
    return verify_chain()


CSV_HEADER = [
    "id",
    "timestamp",
    "actor",
    "action",
    "event",
    "object_type",
    "object_pk",
    "object",
    "changes",
    "remote_addr",
    "entry_hash",
]


def audit_csv_rows(qs: QuerySet[AuditEntry]) -> Iterator[list]:
    yield CSV_HEADER
    for e in qs.iterator(chunk_size=2000):
        yield [
            e.pk,
            e.timestamp.isoformat(),
            e.actor.username if e.actor else "",
            e.get_action_display(),
            (e.additional_data or {}).get("event", ""),
            e.content_type.model,
            e.object_pk,
            e.object_repr,
            e.changes or "",
            e.remote_addr or "",
            e.entry_hash,
        ]
