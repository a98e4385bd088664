"""Where one data subject's rows live, store by store, and how each store forgets them.

Every file is read and rewritten through the feature store's own functions
(`offline.partition_read` / `partition_replace`, `training_sets.training_set_load` /
`training_set_replace`), so whatever they do to the bytes on disk (encryption of PII views) holds
here too. Nothing here checks who asks: `apps.privacy.services` does, and audits.

A subject is an entity key: for an entity with one join key, the key as text (`42`, `c-17`); for
an entity with several, the values in join-key order separated by commas (`42,eu`). The key is
matched against every entity it fits (or the one named).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from auditlog.context import disable_auditlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count

from apps.core.errors import IntegrityFailure
from apps.features import offline, online, training_sets
from apps.features.models import Entity, FeatureView, FeatureViewVersion, Partition, TrainingSet
from apps.serving.ids import pseudonymise_key
from apps.serving.models import Feedback, PredictionLog

MAX_KEY_CHARS = 256
NOT_INDEXED = {"run_artifacts": "run artifacts: not indexed by entity key"}
Progress = Callable[[str, int, int], None]  # (store, done, total)


@dataclass
class Subject:
    """The key and, per entity it fits, its typed values in join-key order."""

    key: str
    entities: list[tuple[Entity, tuple]] = field(default_factory=list)


def _typed(entity: Entity, key: str) -> tuple | None:
    parts = [key] if len(entity.join_keys) == 1 else key.split(",")
    if len(parts) != len(entity.join_keys):
        return None
    values = []
    for part, spec in zip(parts, entity.join_keys, strict=True):
        if spec["dtype"] == "int64":
            try:
                values.append(int(part.strip()))
            except ValueError:
                return None
        else:
            values.append(part)
    return tuple(values)


def subject_of(key, entity_name: str | None = None) -> Subject:
    """The subject for `key` (and `entity_name`, else every entity the key fits), or field errors."""
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
        raise ValidationError({"key": [f"Give the entity key as text of 1 to {MAX_KEY_CHARS} characters."]})
    entities = Entity.objects.order_by("name")
    if entity_name:
        entities = entities.filter(name=entity_name)
        if not entities:
            raise ValidationError({"entity": [f"There is no entity {entity_name!r}; leave it empty to try them all."]})
    subject = Subject(key=key)
    for entity in entities:
        values = _typed(entity, key)
        if values is not None:
            subject.entities.append((entity, values))
    if entity_name and not subject.entities:
        keys = ", ".join(f"{k['name']} ({k['dtype']})" for k in entities[0].join_keys)
        raise ValidationError({"key": [f"{key!r} does not fit {entity_name}'s join keys: {keys}, comma-separated."]})
    return subject


def _mask(table: pa.Table, key_names: list[str], values: tuple) -> np.ndarray:
    """Which rows of `table` carry the key (all join-key columns equal)."""
    if table.num_rows == 0 or any(name not in table.column_names for name in key_names):
        return np.zeros(table.num_rows, dtype=bool)
    mask = None
    for name, value in zip(key_names, values, strict=True):
        column = table.column(name)
        try:
            equal = pc.equal(column, pa.scalar(value, column.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return np.zeros(table.num_rows, dtype=bool)
        mask = equal if mask is None else pc.and_(mask, equal)
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False)


def _here(region: str) -> bool:
    return region == offline.process_region()


def _elsewhere(store: str, what: str, region: str) -> dict:
    return {
        "store": store, "what": what, "region": region,
        "reason": f"its data lives in region {region!r}; run this in region {region!r} too",
    }  # fmt: skip


# --- offline store ----------------------------------------------------------------------------


def offline_targets(subject: Subject, skipped: list) -> Iterator[tuple[FeatureView, Partition, list, tuple]]:
    """Every partition (any version) of every view of the subject's entities, in this region."""
    for entity, values in subject.entities:
        for view in FeatureView.objects.filter(entity=entity).order_by("name"):
            if not _here(view.region):
                skipped.append(_elsewhere("offline", view.name, view.region))
                continue
            for part in Partition.objects.filter(view=view).order_by("version", "date", "pk"):
                yield view, part, entity.key_names, values


def offline_find(subject: Subject, skipped: list, progress: Progress | None = None) -> list[dict]:
    """One entry per partition file holding the key: view, version, path, rows."""
    targets = list(offline_targets(subject, skipped))
    found = []
    for i, (view, part, names, values) in enumerate(targets, 1):
        rows = int(_mask(offline.partition_read(part, columns=names), names, values).sum())
        if rows:
            found.append({"view": view.name, "version": part.version, "path": part.path, "rows": rows})
        if progress:
            progress("offline", i, len(targets))
    return found


def offline_erase(view: FeatureView, part: Partition, names: list, values: tuple) -> dict | None:
    """Rewrite one partition without the key's rows (None when it has none)."""
    with transaction.atomic():
        part = Partition.objects.select_for_update().filter(pk=part.pk).first()
        if part is None:
            return None  # gone meanwhile (retention)
        table = offline.partition_read(part)
        mask = _mask(table, names, values)
        removed = int(mask.sum())
        if not removed:
            return None
        before = offline.file_sha256(part.path)
        old_path = part.path
        new_path = offline.partition_replace(part=part, table=table.filter(pa.array(~mask)))
        return {
            "store": "offline", "view": view.name, "version": part.version, "path": old_path,
            "new_path": new_path, "rows_removed": removed, "rows_kept": table.num_rows - removed,
            "sha256_before": before, "sha256_after": offline.file_sha256(new_path) if new_path else None,
        }  # fmt: skip


# --- online store -----------------------------------------------------------------------------


def online_find(subject: Subject, skipped: list) -> list[dict]:
    """One entry per Redis key holding the subject's latest values (every version of every view)."""
    found = []
    for entity, values in subject.entities:
        for view in FeatureView.objects.filter(entity=entity).order_by("name"):
            if not _here(view.region):
                skipped.append(_elsewhere("online", view.name, view.region))
                continue
            versions = sorted(
                {view.version, *FeatureViewVersion.objects.filter(view=view).values_list("version", flat=True)}
            )
            for version in versions:
                for key in online.subject_keys(view.pk, [version], values):
                    found.append({"view": view.name, "version": version, "redis_key": key})
    return found


def online_erase(found: list[dict]) -> int:
    return online.delete_keys([entry["redis_key"] for entry in found])


# --- training sets ----------------------------------------------------------------------------


def _training_set_entities() -> dict[int, int]:
    return dict(FeatureView.objects.values_list("pk", "entity_id"))


def training_set_targets(subject: Subject, skipped: list) -> Iterator[tuple[TrainingSet, list, tuple]]:
    """Stored sets built from a view of the subject's entity that have its join-key columns."""
    view_entity = _training_set_entities()
    for entity, values in subject.entities:
        for ts in TrainingSet.objects.order_by("pk"):
            views = [v.get("id") for v in (ts.lineage or {}).get("views", [])]
            known = [view_entity[v] for v in views if v in view_entity]
            if known and entity.pk not in known:
                continue
            if not set(entity.key_names) <= set(ts.columns):
                continue
            if not _here(ts.region):
                skipped.append(_elsewhere("training_sets", f"{ts.name} ({ts.pk})", ts.region))
                continue
            yield ts, entity.key_names, values


def _load(ts: TrainingSet, skipped: list) -> pa.Table | None:
    try:
        return training_sets.training_set_load(ts)
    except IntegrityFailure as exc:
        skipped.append({"store": "training_sets", "what": f"{ts.name} ({ts.pk})", "reason": str(exc)})
        return None


def training_set_find(subject: Subject, skipped: list, progress: Progress | None = None) -> list[dict]:
    targets = list(training_set_targets(subject, skipped))
    found = []
    for i, (ts, names, values) in enumerate(targets, 1):
        table = _load(ts, skipped)
        rows = 0 if table is None else int(_mask(table, names, values).sum())
        if rows:
            found.append({"id": ts.pk, "name": ts.name, "path": ts.path, "rows": rows})
        if progress:
            progress("training_sets", i, len(targets))
    return found


def training_set_erase(ts: TrainingSet, names: list, values: tuple, skipped: list) -> dict | None:
    with transaction.atomic():
        ts = TrainingSet.objects.select_for_update().filter(pk=ts.pk).first()
        table = None if ts is None else _load(ts, skipped)
        if table is None:
            return None
        mask = _mask(table, names, values)
        removed = int(mask.sum())
        if not removed:
            return None
        old_path = ts.path
        before, after = training_sets.training_set_replace(training_set=ts, table=table.filter(pa.array(~mask)))
        return {
            "store": "training_sets", "training_set": ts.pk, "name": ts.name, "path": old_path,
            "new_path": ts.path, "rows_removed": removed, "rows_kept": table.num_rows - removed,
            "sha256_before": before, "sha256_after": after,
        }  # fmt: skip


# --- prediction logs and their feedback -------------------------------------------------------
# The predict call's `key` is logged only as serving's keyed hash (PredictionLog.key_hash); inputs
# are the model's numeric features. A subject's predictions are those whose caller key is its key.


def prediction_logs_of(subject: Subject):
    return PredictionLog.objects.filter(key_hash=pseudonymise_key(subject.key))


def prediction_find(subject: Subject) -> dict:
    logs = prediction_logs_of(subject)
    per_endpoint = logs.values("endpoint__name").annotate(n=Count("pk")).order_by("endpoint__name")
    feedback = Feedback.objects.filter(prediction_id__in=logs.values("prediction_id")).count()
    endpoints = [{"endpoint": row["endpoint__name"], "rows": row["n"]} for row in per_endpoint]
    return {"rows": sum(e["rows"] for e in endpoints), "endpoints": endpoints, "feedback": feedback}


def prediction_erase(subject: Subject) -> dict:
    """Delete the subject's prediction log rows and the outcomes recorded for them. auditlog is
    off here: its delete entries would copy the rows' inputs into the trail, which is kept forever."""
    logs = prediction_logs_of(subject)
    with transaction.atomic(), disable_auditlog():
        feedback, _ = Feedback.objects.filter(prediction_id__in=logs.values("prediction_id")).delete()
        rows, _ = logs.delete()
    return {"rows": rows, "feedback": feedback}
