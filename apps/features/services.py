"""Writes for the feature registry and store. Keyword-only; every one takes the actor and checks permissions.

Side effects (the materialization task, socket messages) start after commit; tasks are sent by name
(`features.materialize`), so this module never imports `apps.features.tasks`. Materialization jobs
live in `apps.features.materialization` and are re-exported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow.compute as pc
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.core.audit import audit_event
from apps.core.errors import Conflict
from apps.core.names import check_name
from apps.core.permissions import PII_CODENAME, can_view_pii, grant_extra, grant_owner, require
from apps.core.queues import validate_region
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.features import offline, online, reader, stats
from apps.features.materialization import (  # noqa: F401 - the feature store's services, in one place
    feature_view_materialize,
    materialization_cancel,
    materialization_run,
)
from apps.features.models import (
    DTYPES,
    KEY_DTYPES,
    MAX_RETENTION_DAYS,
    Entity,
    FeatureView,
    FeatureViewVersion,
)
from apps.features.schema import CREATED_TS, EVENT_TS, build_table, parse_payload

# Names are reserved where a fixed route of the kind would hide the object's page (apps.core.names).
VIEW_ROUTES = ("features/", "api/v1/feature-views/")
ENTITY_ROUTES = ("features/entities/", "api/v1/entities/")
TRAINING_SET_ROUTES = ("features/training-sets/", "api/v1/training-sets/")
FEATURE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RESERVED = {EVENT_TS, CREATED_TS, online.TS_FIELD}
MAX_FEATURES = 500
MAX_TTL = 10 * 365 * 86400
PREVIEW_ROWS = 20


def clean_join_keys(join_keys) -> list[dict]:
    if not isinstance(join_keys, list) or not join_keys or len(join_keys) > 5:
        raise ValidationError({"join_keys": ['Give 1 to 5 keys: [{"name": "customer_id", "dtype": "int64"}].']})
    out, seen = [], set()
    for i, k in enumerate(join_keys, start=1):
        if not isinstance(k, dict) or not FEATURE_NAME_RE.match(str(k.get("name", ""))) or k["name"] in RESERVED:
            raise ValidationError({"join_keys": [f"Key {i}: name must be a lowercase identifier like customer_id."]})
        if k.get("dtype") not in KEY_DTYPES:
            raise ValidationError({"join_keys": [f"Key {k['name']}: dtype must be one of {', '.join(KEY_DTYPES)}."]})
        if k["name"] in seen:
            raise ValidationError({"join_keys": [f"Key {k['name']} is listed twice."]})
        seen.add(k["name"])
        out.append({"name": k["name"], "dtype": k["dtype"]})
    return out


def clean_features(features, key_names: list[str]) -> list[dict]:
    if not isinstance(features, list) or not features or len(features) > MAX_FEATURES:
        raise ValidationError({"features": [f"Give 1 to {MAX_FEATURES} features with name and dtype."]})
    out, seen = [], set()
    for i, f in enumerate(features, start=1):
        if not isinstance(f, dict):
            raise ValidationError({"features": [f"Feature {i} must be an object with name and dtype."]})
        name = f.get("name")
        if not isinstance(name, str) or not FEATURE_NAME_RE.match(name) or name in RESERVED or name in key_names:
            raise ValidationError(
                {
                    "features": [
                        f"Feature {i}: {str(name)[:40]!r} must be a lowercase identifier, not a key or reserved."
                    ]
                }
            )
        if name in seen:
            raise ValidationError({"features": [f"Feature {name} is listed twice."]})
        if f.get("dtype") not in DTYPES:
            raise ValidationError({"features": [f"Feature {name}: dtype must be one of {', '.join(DTYPES)}."]})
        description = f.get("description", "")
        if not isinstance(description, str) or len(description) > 1000:
            raise ValidationError({"features": [f"Feature {name}: description must be text under 1000 characters."]})
        if not isinstance(f.get("pii", False), bool):
            raise ValidationError({"features": [f"Feature {name}: pii must be true or false."]})
        seen.add(name)
        out.append({"name": name, "dtype": f["dtype"], "description": description, "pii": f.get("pii", False)})
    return out


def _clean_tags(tags) -> list[str]:
    if (
        not isinstance(tags, list)
        or len(tags) > 20
        or not all(isinstance(t, str) and FEATURE_NAME_RE.match(t.replace("-", "_")) for t in tags)
    ):
        raise ValidationError({"tags": ["Give up to 20 lowercase tags (letters, digits, - and _)."]})
    return sorted(set(tags))


def _clean_ttl(ttl) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        raise ValidationError({"ttl_seconds": [f"TTL must be whole seconds from 0 (never expires) to {MAX_TTL}."]})
    return ttl


def _clean_retention(days) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValidationError(
            {
                "retention_days": [
                    f"Retention must be whole days from 1 to {MAX_RETENTION_DAYS}, or null to keep forever."
                ]
            }
        )
    return days


def _clean_region(region) -> str:
    try:
        return validate_region(region) or "default"
    except (ValueError, TypeError) as exc:
        raise ValidationError({"region": [str(exc)]}) from None


def entity_create(*, actor, name, join_keys, description: str = "", team: str | None = None) -> Entity:
    """Register an entity; `team` (a slug of one of the actor's teams) becomes its viewer."""
    require(actor, "add", Entity)
    check_name(name, route_prefixes=ENTITY_ROUTES)
    if Entity.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"An entity named {name!r} exists already; pick another name."]})
    team_obj = team_for_create(actor=actor, slug=team)
    with transaction.atomic():
        entity = Entity.objects.create(
            name=name, join_keys=clean_join_keys(join_keys), description=description or "", owner=actor, team=team_obj
        )
        grant_owner(entity)
        share_with_team_on_create(entity, team_obj)
    return entity


def feature_view_create(
    *, actor, name, entity: Entity, features, description="", tags=(), region="default", ttl_seconds=0,
    source="batch", team: str | None = None, retention_days=None,
) -> FeatureView:  # fmt: skip
    """Define a feature view on `entity`; `team` (a slug of one of the actor's teams) becomes its viewer.
    The creator also holds ``view_pii``: the steward who classifies the data may see it."""
    require(actor, "add", FeatureView)
    require(actor, "view", entity)
    check_name(name, route_prefixes=VIEW_ROUTES)
    if FeatureView.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A feature view named {name!r} exists already; pick another name."]})
    if source not in FeatureView.Source.values:
        raise ValidationError({"source": ["Source must be batch or push."]})
    clean = clean_features(features, entity.key_names)
    retention_days = _clean_retention(retention_days)
    team_obj = team_for_create(actor=actor, slug=team)
    with transaction.atomic():
        view = FeatureView.objects.create(
            name=name, entity=entity, features=clean, description=description or "",
            tags=_clean_tags(list(tags) if isinstance(tags, tuple) else tags), region=_clean_region(region),
            ttl_seconds=_clean_ttl(ttl_seconds), source=source, owner=actor, team=team_obj,
            retention_days=retention_days,
        )  # fmt: skip
        FeatureViewVersion.objects.create(view=view, version=1, features=clean, join_keys=entity.join_keys)
        grant_owner(view)
        grant_extra(view, PII_CODENAME, user=actor)
        share_with_team_on_create(view, team_obj)
    return view


def is_breaking(old: list[dict], new: list[dict]) -> bool:
    """Removing a feature or changing its type breaks readers; adding one does not."""
    new_types = {f["name"]: f["dtype"] for f in new}
    return any(new_types.get(f["name"]) != f["dtype"] for f in old)


def feature_view_update(*, view: FeatureView, actor, **changes) -> FeatureView:
    """Change a view's settings; removing or retyping a feature makes a new version. Sharing
    (teams included) goes through the sharing service, not here."""
    require(actor, "change", view)
    allowed = {"description", "tags", "ttl_seconds", "features", "source", "region", "retention_days"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    with transaction.atomic():
        view = FeatureView.objects.select_for_update().select_related("entity").get(pk=view.pk)
        if "description" in changes:
            view.description = str(changes["description"] or "")
        if "tags" in changes:
            view.tags = _clean_tags(changes["tags"])
        if "ttl_seconds" in changes:
            view.ttl_seconds = _clean_ttl(changes["ttl_seconds"])
        if "retention_days" in changes:
            view.retention_days = _clean_retention(changes["retention_days"])
        if "source" in changes:
            if changes["source"] not in FeatureView.Source.values:
                raise ValidationError({"source": ["Source must be batch or push."]})
            view.source = changes["source"]
        if "region" in changes:
            _change_region(view, changes["region"])
        if "features" in changes:
            _change_features(view, changes["features"])
        view.save()
    return view


def _change_region(view: FeatureView, region) -> None:
    region = _clean_region(region)
    if region != view.region and view.partitions.exists():
        raise ValidationError(
            {"region": ["This view already has data in its region; create a new view for the other region."]}
        )
    view.region = region


def _change_features(view: FeatureView, features) -> None:
    new = clean_features(features, view.entity.key_names)
    if is_breaking(view.features, new):
        view.version += 1
        view.statistics, view.row_count, view.newest_event_at = {}, 0, None
        FeatureViewVersion.objects.create(
            view=view, version=view.version, features=new, join_keys=view.entity.join_keys,
            reason="breaking schema change (a feature was removed or changed type)",
        )  # fmt: skip
    else:
        FeatureViewVersion.objects.filter(view=view, version=view.version).update(features=new)
        # a feature newly marked PII keeps no values in the statistics computed before
        view.statistics = stats.public(view.statistics, {f["name"] for f in new if f["pii"]})
    view.features = new


def _refresh_statistics(view: FeatureView, *, ingested: bool = True) -> None:
    """Statistics, row count and freshness from the current version's rows (after ingest or deletion)."""
    table = offline.read_view(view)
    view.statistics = stats.compute(table, view.features)
    view.row_count = table.num_rows
    fields = ["statistics", "row_count", "newest_event_at", "updated_at"]
    if table.num_rows:
        view.newest_event_at = pc.max(table.column(EVENT_TS)).as_py()
    elif not ingested:
        view.newest_event_at = None
    if ingested:
        view.last_ingested_at = timezone.now()
        fields.append("last_ingested_at")
    view.save(update_fields=fields)


def feature_view_recount(*, view: FeatureView) -> None:
    """Statistics, row count and freshness again after rows were removed from the view's files (a
    data-subject erasure: apps.privacy, which checks and audits); values seen only in those rows go."""
    with transaction.atomic():
        _refresh_statistics(
            FeatureView.objects.select_for_update().select_related("entity").get(pk=view.pk), ingested=False
        )


def feature_view_ingest(*, view: FeatureView, actor, data, fmt: str | None = None, request=None) -> dict:
    """Validate and append rows to the offline store; all or nothing. Returns a summary."""
    require(actor, "change", view)
    offline.check_residency(view.region, actor=actor, obj=view, action="ingest", request=request)
    raw = parse_payload(data, fmt)
    table = build_table(raw, view.entity.join_keys, view.features, timezone.now())
    with offline.writing_partitions() as written:
        view = FeatureView.objects.select_for_update().select_related("entity").get(pk=view.pk)
        partitions = written(offline.write_partitions(view=view, table=table, actor=actor, origin="ingest"))
        _refresh_statistics(view)
    return {"rows": table.num_rows, "partitions": [p.path for p in partitions], "version": view.version}


def feature_view_push(*, view: FeatureView, actor, data, request=None) -> dict:
    """Rows straight into the online store, logged to the offline store first (all or nothing)."""
    require(actor, "change", view)
    if view.source != FeatureView.Source.PUSH:
        raise Conflict(
            f"{view.name} is a batch view: ingest its data and materialize it, or change its source to push."
        )
    offline.check_residency(view.region, actor=actor, obj=view, action="push", request=request)
    raw = parse_payload(data)
    table = build_table(raw, view.entity.join_keys, view.features, timezone.now())
    with offline.writing_partitions() as written:
        view = FeatureView.objects.select_for_update().select_related("entity").get(pk=view.pk)
        written(offline.write_partitions(view=view, table=table, actor=actor, origin="push"))
        _refresh_statistics(view)
    written = online.write_latest(
        view_id=view.pk, version=view.version, table=table, key_names=view.entity.key_names, features=view.features
    )
    return {"rows": table.num_rows, "keys_written": written, "version": view.version}


def online_read(*, actor, features: list[str], entities: dict, request=None) -> dict:
    """Many features for many entities in one call (see reader.read_sync)."""
    return reader.read_sync(user=actor, body={"features": features, "entities": entities}, request=request)


@dataclass(frozen=True)
class Preview:
    """The newest offline rows of a view as a page shows them; `refused` says why there are none."""

    columns: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    refused: str = ""


def feature_view_preview(*, view: FeatureView, actor, request=None, limit: int = PREVIEW_ROWS) -> Preview:
    """The newest `limit` rows from the offline store, PII masked unless `can_view_pii`; an
    unmasked preview of PII is audited. Data of another region is not read (the refusal is audited
    and returned, so the page still shows the view's schema)."""
    require(actor, "view", view)
    try:
        offline.check_residency(view.region, actor=actor, obj=view, action="preview", request=request)
    except offline.ResidencyError as exc:
        return Preview(refused=str(exc))
    parts = list(offline.partitions_of(view).order_by("-date", "-id")[:3])
    if not parts:
        return Preview()
    table = offline.read_view(view, start=min(p.min_event_at for p in parts))
    table = table.take(pc.sort_indices(table, [(EVENT_TS, "descending")])[:limit])
    columns = table.column_names
    hidden = set() if can_view_pii(actor, view) else set(view.pii_features)
    rows = [[reader.MASK if c in hidden and r[c] is not None else r[c] for c in columns] for r in table.to_pylist()]
    if not hidden and view.pii_features:
        audit_event(actor=actor, event="features.pii_preview", obj=view, data={"rows": len(rows)}, request=request)
    return Preview(columns=columns, rows=rows)


MAX_AUDITED_FILES = 500


def feature_view_apply_retention(*, view: FeatureView, actor, scheduled: bool = False, request=None, now=None) -> dict:
    """Delete the view's data older than its retention_days (storage limitation); one audit event.

    Offline: whole partition files (any version) whose newest row is older than the cutoff; their rows
    go in one transaction and the files once it commits. Online: keys whose event time is older than
    the cutoff (done first: those values are due for deletion whatever happens next, and a rerun is
    harmless). Statistics and freshness are recomputed when current-version data went. Training sets
    are separate files and stay. `scheduled` is the daily task acting as the system user.
    """
    if not scheduled:
        require(actor, "change", view)
    if view.retention_days is None:
        raise ValidationError({"retention_days": [f"{view.name} keeps its data forever; set retention_days first."]})
    offline.check_residency(view.region, actor=actor, obj=view, action="retention", request=request)
    now = now or timezone.now()
    cutoff = now - timedelta(days=view.retention_days)
    online_keys = online.expire_before(view.pk, int(cutoff.timestamp() * 1_000_000))
    with transaction.atomic():
        view = FeatureView.objects.select_for_update().select_related("entity").get(pk=view.pk)
        removed = offline.delete_partitions_before(view=view, cutoff=cutoff)
        if view.version in removed["versions"]:
            _refresh_statistics(view, ingested=False)
        view.retention_applied_at = now
        view.save(update_fields=["retention_applied_at", "updated_at"])
        result = {
            "retention_days": view.retention_days,
            "cutoff": cutoff.isoformat(),
            "partitions": removed["partitions"],
            "rows": removed["rows"],
            "files": removed["files"],
            "dates": removed["dates"],
            "versions": removed["versions"],
            "online_keys": online_keys,
        }
        audit_event(
            actor=actor,
            event="features.retention_applied",
            obj=view,
            data={
                **result,
                "files": removed["files"][:MAX_AUDITED_FILES],
                "files_truncated": len(removed["files"]) > MAX_AUDITED_FILES,
                "scheduled": scheduled,
            },
            request=request,
        )
    return result
