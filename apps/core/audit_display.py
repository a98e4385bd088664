"""How the audit page shows entries to people: changes as `field: old → new` in words, and which
entries are system bookkeeping (hidden behind a toggle on the page, never dropped).

Only presentation lives here. The trail itself, its filters and the CSV export (complete and raw)
are `apps.core.selectors`; nothing here writes or filters the trail. `audit_rows(entries)` turns a
page of entries into `AuditRow`s with one extra query at most (team names of permission rows).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core import format as fmt
from apps.core.models import AuditEntry

ARROW = "→"
MAX_VALUE_CHARS = 60
MAX_LINES = 8  # a create entry of a wide row (a model version) lists its first fields, then a count
# auditlog writes a reverse relation's manager as "<app>.<Model>.None": a placeholder, not a value.
PLACEHOLDER_RE = re.compile(r"^[a-z_][a-z0-9_]*\.[A-Za-z][A-Za-z0-9]*\.None$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
GUARDIAN_SUFFIXES = ("userobjectpermission", "groupobjectpermission")
TOKEN_TOUCH_FIELDS = frozenset({"last_used_at", "last_used_ip", "last_used"})
SKIPPED_ON_CREATE = frozenset({"id"})
PERMISSION_WORDS = {"view": "view", "change": "edit", "delete": "delete", "add": "add", "view_pii": "PII access"}
KIND_WORDS = {"registeredmodel": "model"}  # what people call a kind when it differs from its verbose name
TEAM_GROUP_PREFIX = "team:"
SIZE_KEYS = frozenset({"size", "bytes", "size_bytes", "plaintext_size"})


# (related model label, pk as text) -> the name people know that row by
RelatedNames = dict[tuple[str, str], str]


@dataclasses.dataclass
class AuditRow:
    """One entry as the page shows it: `summary` is a sentence (permission rows), `changes` the
    `field: old → new` lines, `bookkeeping` why the entry is system bookkeeping ("" when it is not)."""

    entry: AuditEntry
    summary: str
    changes: list[str]
    bookkeeping: str

    @property
    def is_bookkeeping(self) -> bool:
        return bool(self.bookkeeping)


# --- which entries are bookkeeping ------------------------------------------------------------


def _changes(entry: AuditEntry) -> dict | None:
    changes = entry.changes
    if isinstance(changes, str):  # entries written before JSON changes were stored
        try:
            changes = json.loads(changes)
        except ValueError:
            return None
    return changes if isinstance(changes, dict) else None


def _model_of(entry: AuditEntry) -> type[models.Model] | None:
    return entry.content_type.model_class() if entry.content_type_id else None


def _is_noise(model: type[models.Model] | None, name: str, value: Any) -> bool:
    """A reverse relation (its placeholder, or an m2m change seen from the other side)."""
    if isinstance(value, list | tuple) and any(isinstance(v, str) and PLACEHOLDER_RE.match(v) for v in value):
        return True
    if model is None:
        return False
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return field.auto_created and not field.concrete


def is_permission_row(entry: AuditEntry) -> bool:
    """A guardian user or group object-permission row (what a share or unshare writes)."""
    return entry.content_type.model.endswith(GUARDIAN_SUFFIXES)


def bookkeeping_reason(entry: AuditEntry) -> str:
    """Why `entry` is system bookkeeping, in a few words, or "" for an entry people act on."""
    if entry.action == AuditEntry.Action.ACCESS:
        return ""  # explicit events (shares, downloads, logins) are never bookkeeping
    kind = entry.content_type.model
    if is_permission_row(entry):
        return "permission row"
    if entry.content_type.app_label == "core" and kind == "vaultblob":
        return "vault blob"
    is_team_group = entry.content_type.app_label == "auth" and entry.object_repr.startswith(TEAM_GROUP_PREFIX)
    if kind == "group" and is_team_group and entry.action != AuditEntry.Action.UPDATE:
        return "team group"  # the guardian group behind a team, created and deleted with it
    changes = _changes(entry)
    if (
        kind == "apitoken"
        and entry.action == AuditEntry.Action.UPDATE
        and changes
        and set(changes) <= TOKEN_TOUCH_FIELDS
    ):
        return "token use"
    if entry.action == AuditEntry.Action.UPDATE:
        model = _model_of(entry)
        if not changes or all(_is_noise(model, name, value) for name, value in changes.items()):
            return "internal relation"
    return ""


def is_bookkeeping(entry: AuditEntry) -> bool:
    """Guardian permission rows, vault blob rows, token last-used touches and updates that only
    touch reverse relations: kept in the trail and the export, hidden on the page by default."""
    return bool(bookkeeping_reason(entry))


# --- values in words --------------------------------------------------------------------------


def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _field(model: type[models.Model] | None, name: str) -> models.Field | None:
    if model is None:
        return None
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _label(model: type[models.Model] | None, name: str) -> str:
    field = _field(model, name)
    verbose = getattr(field, "verbose_name", None)
    return str(verbose) if verbose else name.replace("_", " ")


def value_text(value: Any, field: models.Field | None = None, key: str = "", names: RelatedNames | None = None) -> str:
    """One stored value as people read it: 'text', yes/no, 1,234, 30 Nov 2026, 14:05 UTC, 1.2 MB;
    a foreign key as the related row's name when `names` knows it, else as #id."""
    if value is None:
        return "—"
    if isinstance(field, models.BooleanField) and value in ("True", "False"):
        value = value == "True"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if field is not None and field.is_relation and isinstance(value, int | str) and str(value).isdigit():
        name = (names or {}).get((field.related_model._meta.label_lower, str(value)))
        return name if name else f"#{value}"
    if isinstance(value, int | float):
        return fmt.size(value) if key in SIZE_KEYS else fmt.num(value)
    if isinstance(value, str):
        if not value:
            return "(empty)"
        if DATETIME_RE.match(value) and (moment := parse_datetime(value)) is not None:
            # auditlog stores naive UTC text; fmt.when shows it in the portal's time zone
            return fmt.when(moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC))
        return "'" + shorten(value) + "'"
    if isinstance(value, list | tuple):
        if not value:
            return "(none)"
        return shorten(", ".join(v if isinstance(v, str) else _compact(v) for v in value))
    if isinstance(value, dict):
        if not value:
            return "(none)"
        parts = (f"{k}={fmt.num(v) if isinstance(v, int | float) else _compact(v)}" for k, v in value.items())
        return shorten(", ".join(parts))
    return shorten(str(value))


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return value_text(value)
    if isinstance(value, int | float):
        return fmt.num(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def _m2m_text(change: dict) -> str:
    objects = ", ".join(str(o) for o in change.get("objects") or [])
    verb = {"add": "added", "delete": "removed", "remove": "removed", "clear": "cleared"}.get(
        change.get("operation"), str(change.get("operation") or "changed")
    )
    return shorten(f"{verb} {objects}".strip(), 2 * MAX_VALUE_CHARS)


def change_lines(entry: AuditEntry, names: RelatedNames | None = None) -> list[str]:
    """The entry's changes as `field: old → new` lines (a created or deleted row lists its values;
    an event lists its data). Reverse-relation placeholders and empty values of a new row are left
    out here: the CSV export keeps every raw change."""
    if entry.action == AuditEntry.Action.ACCESS:
        data = {k: v for k, v in (entry.additional_data or {}).items() if k != "event"}
        return [f"{k.replace('_', ' ')}: {value_text(v, key=k)}" for k, v in data.items()][:MAX_LINES]
    changes = _changes(entry)
    if changes is None:
        return [shorten(str(entry.changes), 2 * MAX_VALUE_CHARS)] if entry.changes else []
    model = _model_of(entry)
    masked = set(settings.AUDITLOG_MASK_TRACKING_FIELDS)
    lines: list[str] = []
    for name, change in changes.items():
        if _is_noise(model, name, change):
            continue
        label = _label(model, name)
        if isinstance(change, dict) and change.get("type") == "m2m":
            lines.append(f"{label}: {_m2m_text(change)}")
            continue
        old, new = (list(change) + [None, None])[:2] if isinstance(change, list | tuple) else (None, change)
        if name in masked:
            lines.append(f"{label}: changed (value hidden)")
        elif entry.action == AuditEntry.Action.CREATE:
            if name not in SKIPPED_ON_CREATE and new not in (None, "", [], {}):
                lines.append(f"{label}: {value_text(new, _field(model, name), name, names)}")
        elif entry.action == AuditEntry.Action.DELETE:
            if name not in SKIPPED_ON_CREATE and old not in (None, "", [], {}):
                lines.append(f"{label}: {value_text(old, _field(model, name), name, names)}")
        else:
            field = _field(model, name)
            lines.append(
                f"{label}: {value_text(old, field, name, names)} {ARROW} {value_text(new, field, name, names)}"
            )
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} more fields"]
    return lines


# --- permission rows in words -----------------------------------------------------------------


def _permission_parts(entry: AuditEntry) -> tuple[str, str, str] | None:
    """(object, holder, codename) from guardian's "object | holder | codename" representation."""
    parts = entry.object_repr.rsplit(" | ", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _kind_of_permission_row(entry: AuditEntry) -> tuple[str, str]:
    """(model name, words) of the object a permission row is about: ("registeredmodel", "model")."""
    model = _model_of(entry)
    target = _field(model, "content_object")
    related = getattr(target, "related_model", None)
    if related is None:
        return "", "object"
    name = related._meta.model_name
    return name, KIND_WORDS.get(name, str(related._meta.verbose_name))


def permission_sentence(entry: AuditEntry, team_names: dict[str, str]) -> str:
    """ "granted view on model 'credit-risk' to team Risk Analytics" (or revoked ... from ...)."""
    parts = _permission_parts(entry)
    if parts is None:
        return ""
    obj, holder, codename = parts
    model_name, kind = _kind_of_permission_row(entry)
    action = codename[: -len(model_name) - 1] if model_name and codename.endswith(f"_{model_name}") else codename
    words = PERMISSION_WORDS.get(action, action.replace("_", " "))
    if entry.content_type.model.endswith("groupobjectpermission"):
        team = team_names.get(holder)
        whom = f"team {team}" if team else f"group {holder}"
    else:
        whom = f"user {holder}"
    if entry.action == AuditEntry.Action.DELETE:
        return f"revoked {words} on {kind} '{obj}' from {whom}"
    if entry.action == AuditEntry.Action.CREATE:
        return f"granted {words} on {kind} '{obj}' to {whom}"
    return f"changed {words} on {kind} '{obj}' for {whom}"


def _team_names(entries: Sequence[AuditEntry]) -> dict[str, str]:
    """Group name -> team name for the group permission rows among `entries`, in one query."""
    groups = {
        parts[1]
        for e in entries
        if e.content_type.model.endswith("groupobjectpermission") and (parts := _permission_parts(e))
    }
    if not groups:
        return {}
    return dict(Group.objects.filter(name__in=groups, team__isnull=False).values_list("name", "team__name"))


def _name_field(model: type[models.Model]) -> str | None:
    """The field a row of `model` is known by: the username, a name or a slug; None for others."""
    if model is get_user_model():
        return model.USERNAME_FIELD
    for candidate in ("name", "slug"):
        if _field(model, candidate) is not None and not _field(model, candidate).is_relation:
            return candidate
    return None


def _related_names(entries: Sequence[AuditEntry]) -> RelatedNames:
    """Names of the rows that the page's foreign-key changes point to: one query per related
    model that has a name (users, models, teams, ...), however many entries point to it."""
    wanted: dict[type[models.Model], set[str]] = {}
    for entry in entries:
        changes = _changes(entry) if entry.action != AuditEntry.Action.ACCESS else None
        model = _model_of(entry) if changes else None
        for name, change in (changes or {}).items():
            field = _field(model, name)
            if field is None or not field.concrete or not (field.many_to_one or field.one_to_one):
                continue
            values = change if isinstance(change, list | tuple) else [change]
            wanted.setdefault(field.related_model, set()).update(str(v) for v in values if str(v).isdigit())
    names: RelatedNames = {}
    for related, pks in wanted.items():
        name_field = _name_field(related)
        if name_field and pks:
            label = related._meta.label_lower
            rows = related._default_manager.filter(pk__in=pks).values_list("pk", name_field)
            names.update({(label, str(pk)): str(text) for pk, text in rows})
    return names


def audit_rows(entries: Iterable[AuditEntry]) -> list[AuditRow]:
    """A page of entries (with `content_type` loaded) as display rows. Extra queries: one for the
    team names of permission rows, one per named kind of row that changes point to."""
    entries = list(entries)
    teams = _team_names(entries)
    names = _related_names(entries)
    rows = []
    for entry in entries:
        summary = permission_sentence(entry, teams) if is_permission_row(entry) else ""
        lines = [] if summary else change_lines(entry, names)
        rows.append(AuditRow(entry, summary, lines, bookkeeping_reason(entry)))
    return rows
