"""Point-in-time-correct training sets: build, store (Parquet + digest + lineage), load and export.

The stored Parquet's SHA-256 is recorded at build time and checked before any of it is used or
sent (`IntegrityFailure` otherwise). A set with any PII column is stored sealed (apps/features/
sealed.py); its digest is that of the Parquet inside, so it means the same for sealed and plain sets. PII columns follow the views they came from: a caller who
may not `can_view_pii` a view gets those columns masked on export, and cannot build from them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from apps.core.audit import audit_event
from apps.core.errors import Forbidden, IntegrityFailure
from apps.core.names import check_name
from apps.core.permissions import can_view_pii, grant_owner, require, visible_one
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.features import filestore, offline, sealed
from apps.features.models import FeatureView, TrainingSet
from apps.features.pit import point_in_time_join
from apps.features.reader import MASK
from apps.features.schema import (
    CREATED_TS,
    EVENT_TS,
    RowErrors,
    convert_column,
    is_text,
    parse_payload,
    refuse,
    shown,
)

MAX_FEATURE_REFS = 500
# Training sets are addressed by id, but their names follow the one rule and its reserved words.
TRAINING_SET_ROUTES = ("features/training-sets/", "api/v1/training-sets/")
FORMATS = {
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "csv": ("text/csv; charset=utf-8", "csv"),
    "json": ("application/json", "json"),
}
BATCH_ROWS = 10_000
TRAINING_SETS_FOLDER = "_training-sets"  # <region>/_training-sets/<name>-<uuid>.parquet


def _parse_refs(features) -> list[tuple[str, str]]:
    if not isinstance(features, list) or not features or len(features) > MAX_FEATURE_REFS:
        raise ValidationError({"features": [f'Give 1 to {MAX_FEATURE_REFS} "view:feature" references.']})
    refs = []
    for ref in features:
        if not isinstance(ref, str) or not is_text(ref) or ref.count(":") != 1 or not all(ref.split(":")):
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
        for name in names:
            if not is_text(name):
                raise ValidationError(
                    {"entity_rows": [f"Column {shown(name)} is not a valid name (it holds a lone surrogate)."]}
                )
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
            except UnicodeEncodeError:
                raise ValidationError(
                    {"entity_rows": [f"Column {name} holds text that is not valid Unicode (a lone surrogate)."]}
                ) from None
        else:
            out[name] = values
    return pa.table(out)


def _digest_table(table: pa.Table) -> str:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _views_for(actor, refs: list[tuple[str, str]], request=None) -> dict[str, FeatureView]:
    """The named views, visible to the actor, in this region; PII features need `can_view_pii`."""
    views: dict[str, FeatureView] = {}
    for view_name, feature in refs:
        if view_name not in views:
            views[view_name] = visible_one(actor, FeatureView.objects.select_related("entity"), name=view_name)
        if feature not in views[view_name].feature_names:
            raise ValidationError({"features": [f"Feature view {view_name!r} has no feature {feature!r}."]})
    for view in views.values():
        offline.check_residency(view.region, actor=actor, obj=view, action="training-set", request=request)
    for view_name in {v for v, f in refs if f in views[v].pii_features}:
        if not can_view_pii(actor, views[view_name]):
            raise Forbidden(f"{view_name} has PII features; ask its owner for the view_pii permission.")
    return views


def _join(labels: pa.Table, refs, views: dict[str, FeatureView]) -> tuple[pa.Table, list[dict]]:
    """Each label row with the feature values as of its timestamp, and the lineage of every view."""
    result, lineage, taken = labels, [], set(labels.column_names)
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
        lineage.append(
            {"name": view_name, "id": view.pk, "version": view.version, "features": wanted, "columns": out_names,
             "pii": [f for f in wanted if f in view.pii_features], "rows": table.num_rows, "partitions": parts,
             "ttl_seconds": view.ttl_seconds}
        )  # fmt: skip
    return result, lineage


def training_set_create(
    *, actor, name, features, entity_rows=None, entity_table=None, fmt=None, team: str | None = None, request=None
) -> TrainingSet:
    """Join the entity/label table with the features as of each row's timestamp; store the result.
    `team` (a slug of one of the actor's teams) becomes a viewer of the set."""
    require(actor, "add", TrainingSet)
    check_name(name, route_prefixes=TRAINING_SET_ROUTES)
    refs = _parse_refs(features)
    team_obj = team_for_create(actor=actor, slug=team)
    views = _views_for(actor, refs, request)
    if (entity_rows is None) == (entity_table is None):
        raise ValidationError({"entity_rows": ["Give the entity table either as JSON rows or as one file."]})
    raw = entity_rows if entity_rows is not None else parse_payload(entity_table, fmt)
    labels = _entity_table(raw, list(views.values()))
    entity_digest = _digest_table(labels)
    result, view_lineage = _join(labels, refs, views)
    region = next(iter(views.values())).region
    pii = [f"{v['name']}:{f}" for v in view_lineage for f in v["pii"]]
    rel = f"{region}/{TRAINING_SETS_FOLDER}/{name}-{uuid.uuid4().hex}.parquet"
    written = sealed.write_table(result, rel, seal=bool(pii))
    try:
        with transaction.atomic():
            sealed.record(rel, written.key)
            ts = TrainingSet.objects.create(
                name=name, features=[f"{v}:{f}" for v, f in refs], region=region,
                path=rel, row_count=result.num_rows,
                columns=result.column_names, entity_digest=entity_digest, digest=written.sha256,
                lineage={"views": view_lineage, "entity_digest": entity_digest}, owner=actor, team=team_obj,
            )  # fmt: skip
            grant_owner(ts)
            share_with_team_on_create(ts, team_obj)
            if pii:
                audit_event(
                    actor=actor, event="features.pii_training_set", obj=ts, data={"features": pii}, request=request
                )
            written.staged.commit()
    except BaseException:
        written.staged.discard()
        raise
    return ts


def _check_digest(training_set: TrainingSet, digest: str) -> None:
    if digest != training_set.digest:
        raise IntegrityFailure(
            f"Training set {training_set.pk} does not match its digest (it was changed); none of it was used."
        )


def _verified_bytes(training_set: TrainingSet) -> bytes:
    """The stored Parquet (decrypted when sealed), read once and checked against its digest before
    anything uses it."""
    try:
        data = sealed.plaintext(training_set.path)
    except FileNotFoundError:
        raise IntegrityFailure(
            f"The file of training set {training_set.pk} is missing; tell a platform admin."
        ) from None
    _check_digest(training_set, hashlib.sha256(data).hexdigest())
    return data


def training_set_schema(training_set: TrainingSet) -> pa.Schema:
    """The columns of the stored set (its Parquet footer; decrypted first when sealed). No digest check."""
    return sealed.read_schema(training_set.path)


@contextlib.contextmanager
def training_set_local_file(training_set: TrainingSet) -> Iterator[Path]:
    """A local Parquet file of the set, checked against its digest, for readers that stream it
    (batch scoring): the stored file itself when plain on local disk, else a copy (mode 0600) in
    a private temporary folder removed on exit: downloaded from S3 (streamed), or decrypted when
    sealed. The caller checks access and residency."""
    rel = training_set.path
    try:
        plain = bool(rel) and not sealed.is_sealed(rel)
    except FileNotFoundError:
        plain = False  # _verified_bytes says it is missing
    if plain:
        local = filestore.local_path(rel)
        if local is not None:
            _check_digest(training_set, filestore.sha256(rel))
            yield local
            return
        with tempfile.TemporaryDirectory(prefix="training-set-") as folder:
            copy = Path(folder) / "training-set.parquet"
            _check_digest(training_set, filestore.download(rel, copy))
            yield copy
        return
    data = _verified_bytes(training_set)
    with tempfile.TemporaryDirectory(prefix="training-set-") as folder:
        copy = Path(folder) / "training-set.parquet"
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        del data
        yield copy


def training_set_load(training_set: TrainingSet, *, actor=None) -> pa.Table:
    """The stored table, after the residency check and the digest check (`IntegrityFailure`)."""
    if actor is not None:
        require(actor, "view", training_set)
    offline.check_residency(training_set.region, actor=actor, obj=training_set, action="training-set-load")
    return pq.read_table(io.BytesIO(_verified_bytes(training_set)))


def training_set_replace(*, training_set: TrainingSet, table: pa.Table) -> tuple[str, str]:
    """Store `table` (the set's rows less some: a data-subject erasure) as the set's file; returns
    the digests (before, after). Written like `training_set_create`: a new file beside the old
    one, the row (path, row count, digest) changed in the caller's transaction, the old file
    unlinked once it commits."""
    before = training_set.digest
    old_rel = training_set.path
    rel = f"{old_rel.rsplit('/', 1)[0]}/{training_set.name}-{uuid.uuid4().hex}.parquet"
    written = sealed.write_table(table, rel, seal=bool(pii_columns(training_set)))
    try:
        sealed.record(rel, written.key)
        training_set.digest = written.sha256
        training_set.path = rel
        training_set.row_count = table.num_rows
        training_set.save(update_fields=["digest", "path", "row_count", "updated_at"])
        written.staged.commit()
    except BaseException:
        written.staged.discard()
        raise
    transaction.on_commit(lambda: (filestore.delete([old_rel]), sealed.forget([old_rel])))
    return before, training_set.digest


def pii_training_set_paths() -> list[str]:
    """Files of this region's training sets with a PII column, for `features_encrypt_pii`."""
    sets = TrainingSet.objects.filter(region=offline.process_region()).exclude(path="").order_by("pk")
    return [ts.path for ts in sets if pii_columns(ts)]


def pii_columns(training_set: TrainingSet) -> dict[str, int | None]:
    """Output column -> id of the feature view whose PII it holds (None: the view is gone).

    A feature counts as PII when its view flagged it at build time or flags it now."""
    lineage = (training_set.lineage or {}).get("views", [])
    current = {v.pk: v for v in FeatureView.objects.filter(pk__in=[v.get("id") for v in lineage])}
    out: dict[str, int | None] = {}
    for entry in lineage:
        view = current.get(entry.get("id"))
        flagged = set(entry.get("pii", [])) | set(view.pii_features if view is not None else [])
        columns = entry.get("columns") or _columns_of(training_set, entry)
        for feature, column in zip(entry.get("features", []), columns, strict=False):
            if feature in flagged:
                out[column] = view.pk if view is not None else None
    return out


def _columns_of(training_set: TrainingSet, entry: dict) -> list[str]:
    """Output names of sets built before lineage recorded them: the joins appended each view's
    features, in lineage order, after the label table's columns."""
    lineage = training_set.lineage.get("views", [])
    total = sum(len(v.get("features", [])) for v in lineage)
    start = len(training_set.columns) - total
    for other in lineage:
        if other is entry:
            return training_set.columns[start : start + len(entry.get("features", []))]
        start += len(other.get("features", []))
    return []


@dataclass(frozen=True)
class Export:
    """A training set on its way out: the chunks to send and what a response says about them."""

    chunks: Iterator[bytes]
    content_type: str
    filename: str
    masked: list[str]
    rows: int


def training_set_export(*, training_set: TrainingSet, actor, fmt: str = "parquet", request=None) -> Export:
    """The set's rows as Parquet, CSV or JSON (an array of row objects), streamed in batches.

    Checked before the first byte: the caller may view the set, its region is this one, and the
    stored file matches its digest (`IntegrityFailure`: none of it is sent). PII columns are masked
    unless the caller `can_view_pii` on the view they came from. Audited with the masked columns."""
    require(actor, "view", training_set)
    if fmt not in FORMATS:
        raise ValidationError({"format": [f"Use one of {', '.join(FORMATS)}."]})
    offline.check_residency(training_set.region, actor=actor, obj=training_set, action="training-set-read",
                            request=request)  # fmt: skip
    table = pq.read_table(io.BytesIO(_verified_bytes(training_set)))
    masked = _masked_for(actor, training_set, table.column_names)
    table = _mask(table, masked)
    audit_event(
        actor=actor, event="features.training_set_read", obj=training_set,
        data={"format": fmt, "rows": table.num_rows, "masked": masked}, request=request,
    )  # fmt: skip
    content_type, ext = FORMATS[fmt]
    chunks = {"parquet": _parquet_chunks, "csv": _csv_chunks, "json": _json_chunks}[fmt](table)
    return Export(chunks, content_type, f"{training_set.name}-{training_set.pk}.{ext}", masked, table.num_rows)


def _masked_for(actor, training_set: TrainingSet, present: list[str]) -> list[str]:
    """The PII columns `actor` may not see unmasked (every one whose view is gone)."""
    pii = pii_columns(training_set)
    views = {v.pk: v for v in FeatureView.objects.filter(pk__in={pk for pk in pii.values() if pk is not None})}
    return [
        column for column, view_id in pii.items()
        if column in present and (view_id not in views or not can_view_pii(actor, views[view_id]))
    ]  # fmt: skip


def _mask(table: pa.Table, columns: list[str]) -> pa.Table:
    for name in columns:
        index = table.column_names.index(name)
        column = table.column(name)
        values = pa.array([None if v is None else MASK for v in column.to_pylist()], type=pa.string())
        table = table.set_column(index, pa.field(name, pa.string()), values)
    return table


class _Sink(io.RawIOBase):
    """A write-only buffer the writers fill and the stream drains between batches."""

    def __init__(self):
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def _parquet_chunks(table: pa.Table) -> Iterator[bytes]:
    sink = _Sink()
    with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), table.schema, compression="zstd") as writer:
        for batch in table.to_batches(BATCH_ROWS):
            writer.write_batch(batch)
            yield sink.drain()
    yield sink.drain()


def _csv_chunks(table: pa.Table) -> Iterator[bytes]:
    sink = _Sink()
    with pacsv.CSVWriter(pa.PythonFile(sink, mode="w"), table.schema) as writer:
        for batch in table.to_batches(BATCH_ROWS):
            writer.write_batch(batch)
            yield sink.drain()
    yield sink.drain()


def _json_chunks(table: pa.Table) -> Iterator[bytes]:
    yield b"["
    first = True
    for batch in table.to_batches(BATCH_ROWS):
        rows = batch.to_pylist()
        if rows:
            text = ",".join(json.dumps(_json_row(row), cls=DjangoJSONEncoder) for row in rows)
            yield (text if first else "," + text).encode()
            first = False
    yield b"]"


def _json_row(row: dict) -> dict:
    """JSON has no NaN or infinity: such values read as null."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
