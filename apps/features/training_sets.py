"""Point-in-time-correct training sets: build, store (Parquet + digest + lineage) and load."""

from __future__ import annotations

import hashlib
import io
import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from apps.core.audit import audit_event
from apps.core.permissions import grant_owner, require, visible_one
from apps.features import offline
from apps.features.models import FeatureView, TrainingSet
from apps.features.pit import point_in_time_join
from apps.features.schema import CREATED_TS, EVENT_TS, RowErrors, convert_column, parse_payload, refuse

MAX_FEATURE_REFS = 500


def _parse_refs(features) -> list[tuple[str, str]]:
    if not isinstance(features, list) or not features or len(features) > MAX_FEATURE_REFS:
        raise ValidationError({"features": [f'Give 1 to {MAX_FEATURE_REFS} "view:feature" references.']})
    refs = []
    for ref in features:
        if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
            raise ValidationError({"features": [f'{str(ref)[:80]!r} is not a "view:feature" reference.']})
        refs.append(tuple(ref.split(":")))
    if len(set(refs)) != len(refs):
        raise ValidationError({"features": ["A feature is listed twice."]})
    return refs


def _entity_table(raw, views: list[FeatureView]) -> pa.Table:
    """Typed entity table: every view's join keys and event_timestamp, plus labels as given."""
    if isinstance(raw, list):
        if not raw or not all(isinstance(r, dict) for r in raw):
            raise ValidationError({"entity_rows": ["Give a non-empty list of row objects."]})
        names = list(dict.fromkeys(k for r in raw for k in r))
        columns = {n: [r.get(n) for r in raw] for n in names}
        n_rows = len(raw)
    else:
        columns = {n: raw.column(n) for n in raw.column_names}
        n_rows = raw.num_rows
    if n_rows == 0:
        raise ValidationError({"entity_rows": ["The entity table has no rows."]})
    keys: dict[str, str] = {}
    for view in views:
        for k in view.entity.join_keys:
            if keys.setdefault(k["name"], k["dtype"]) != k["dtype"]:
                raise ValidationError({"features": [f"Join key {k['name']} has different types in the views."]})
    errors, typed = [], {}
    for name, dtype in [*keys.items(), (EVENT_TS, "ts")]:
        if name not in columns:
            errors.append((None, name, "is missing from the entity table"))
            continue
        try:
            typed[name] = convert_column(columns[name], dtype, name, required=True)
        except RowErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise refuse(errors, n_rows)
    out = {}
    for name, values in columns.items():
        if name in typed:
            out[name] = typed[name]
        elif isinstance(values, list):
            try:
                out[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                raise ValidationError(
                    {"entity_rows": [f"Column {name} mixes types; use one type per column."]}
                ) from None
        else:
            out[name] = values
    return pa.table(out)


def _digest_table(table: pa.Table) -> str:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def training_set_create(*, actor, name, features, entity_rows=None, entity_table=None, fmt=None, request=None):
    """Join the entity/label table with the features as of each row's timestamp; store the result."""
    require(actor, "add", TrainingSet)
    from apps.features.services import _check_slug

    name = _check_slug(name)
    refs = _parse_refs(features)
    views: dict[str, FeatureView] = {}
    for view_name, feature in refs:
        if view_name not in views:
            views[view_name] = visible_one(actor, FeatureView.objects.select_related("entity"), name=view_name)
        if feature not in views[view_name].feature_names:
            raise ValidationError({"features": [f"Feature view {view_name!r} has no feature {feature!r}."]})
    for view in views.values():
        offline.check_residency(view.region, actor=actor, obj=view, action="training-set", request=request)
    pii = [(v, f) for v, f in refs if f in views[v].pii_features]
    for view_name in {v for v, _ in pii}:
        view = views[view_name]
        if not (actor.has_perm("features.view_pii") or actor.has_perm("view_pii", view)):
            raise PermissionDenied(f"{view_name} has PII features; ask its owner for the view_pii permission.")
    if (entity_rows is None) == (entity_table is None):
        raise ValidationError({"entity_rows": ["Give the entity table either as JSON rows or as one file."]})
    raw = entity_rows if entity_rows is not None else parse_payload(entity_table, fmt)
    labels = _entity_table(raw, list(views.values()))
    entity_digest = _digest_table(labels)
    result, lineage, taken = labels, {"views": [], "entity_digest": entity_digest}, set(labels.column_names)
    for view_name, view in views.items():
        wanted = [f for v, f in refs if v == view_name]
        keys = view.entity.key_names
        table = offline.read_view(view, columns=[*keys, EVENT_TS, CREATED_TS, *wanted])
        out_names = [f if f not in taken else f"{view_name}__{f}" for f in wanted]
        taken.update(out_names)
        result = point_in_time_join(
            result, table, key_columns=keys, feature_columns=wanted, ttl_micros=view.ttl_seconds * 1_000_000,
            output_names=out_names,
        )  # fmt: skip
        parts = list(offline.partitions_of(view).values_list("id", flat=True))
        lineage["views"].append(
            {"name": view_name, "id": view.pk, "version": view.version, "features": wanted, "rows": table.num_rows,
             "partitions": parts, "ttl_seconds": view.ttl_seconds}
        )  # fmt: skip
    region = next(iter(views.values())).region
    folder = offline.store_root() / region / "_training-sets"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{name}-{uuid.uuid4().hex}.parquet"
    tmp = folder / f".tmp-{final.name}"
    pq.write_table(result, tmp, compression="zstd")
    digest = _file_digest(tmp)
    try:
        with transaction.atomic():
            ts = TrainingSet.objects.create(
                name=name, features=[f"{v}:{f}" for v, f in refs], region=region,
                path=str(final.relative_to(offline.store_root())), row_count=result.num_rows,
                columns=result.column_names, entity_digest=entity_digest, digest=digest, lineage=lineage, owner=actor,
            )  # fmt: skip
            grant_owner(ts)
            if pii:
                audit_event(
                    actor=actor,
                    event="features.pii_training_set",
                    obj=ts,
                    data={"features": [f"{v}:{f}" for v, f in pii]},
                    request=request,
                )
            os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise
    return ts


def _file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def training_set_load(training_set: TrainingSet, *, actor=None, verify: bool = True) -> pa.Table:
    """The stored table, after the residency check and (by default) a digest check."""
    if actor is not None:
        require(actor, "view", training_set)
    offline.check_residency(training_set.region, actor=actor, obj=training_set, action="training-set-load")
    path = offline.store_root() / training_set.path
    if verify and _file_digest(path) != training_set.digest:
        raise ValidationError(
            {"detail": [f"Training set {training_set.pk} does not match its digest; it was changed."]}
        )
    return pq.read_table(path)
