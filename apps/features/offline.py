"""The offline store: Parquet files per region, view, version and event date.

Layout: <region>/<view>/v<version>/date=YYYY-MM-DD/part-<uuid>.parquet, under FEATURE_STORE_ROOT
on local disk or as object keys in the region's bucket on S3 (apps/features/filestore.py, which
every file access goes through). A file counts only once its Partition row is committed, and rows
and files are written together: on disk a temp file in the same folder, renamed inside the
transaction; on S3 the object under its final key, deleted again when the transaction fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.db import transaction

from apps.core import residency
from apps.core.errors import ResidencyError  # noqa: F401  (re-exported: callers catch offline.ResidencyError)
from apps.features import filestore, sealed
from apps.features.models import FeatureView, FeatureViewVersion, Partition
from apps.features.schema import EVENT_TS, TS_TYPE, table_schema

DAY_US = 86_400_000_000
log = logging.getLogger(__name__)


def store_root() -> Path:
    """The local store's folder (local-disk mode; on S3 files are reached through filestore)."""
    return Path(settings.FEATURE_STORE_ROOT)


def process_region() -> str:
    return residency.process_region()


def check_residency(region: str, *, actor, obj, action: str, request=None) -> None:
    """Refuse (and audit) any read or write of data pinned to another region.

    Stricter than `apps.core.residency.may_hold`: a view's "default" region is the default portal's
    own store, so a regional portal refuses it too."""
    here = process_region()
    if region == here:
        return
    residency.refuse(
        actor=actor,
        obj=obj,
        region=region,
        action=action,
        request=request,
        event="features.residency_denied",
        why=f"{obj} keeps its data in region {region!r}, but this process runs in region {here!r}. "
        f"Run this on the portal or workers of region {region!r} (queue cpu.{region}).",
    )


def partition_folder(view: FeatureView, version: int, day: dt.date) -> str:
    """The stored path of a partition's folder (its files' paths start with it)."""
    return f"{view.region}/{view.name}/v{version}/date={day.isoformat()}"


def new_partition_path(view: FeatureView, version: int, day: dt.date) -> str:
    return f"{partition_folder(view, version, day)}/part-{uuid.uuid4().hex}.parquet"


def write_partitions(*, view: FeatureView, table: pa.Table, actor, origin: str = "ingest") -> list[Partition]:
    """Write `table` (already validated) as one file per event date, atomically with its rows."""
    ts = table.column(EVENT_TS).combine_chunks().view(pa.int64()).to_numpy()
    days = ts // DAY_US
    unique_days = np.unique(days)
    seal = holds_pii(view)
    staged: list[tuple[sealed.Written, dict]] = []
    try:
        for day_number in unique_days:
            mask = days == day_number
            part = table.filter(pa.array(mask)) if len(unique_days) > 1 else table
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))
            written = sealed.write_table(part, new_partition_path(view, view.version, day), seal=seal)
            day_ts = ts[mask]
            info = {"date": day, "rows": part.num_rows, "min": int(day_ts.min()), "max": int(day_ts.max())}
            staged.append((written, info))
    except BaseException:
        _discard(staged)
        raise
    try:
        with transaction.atomic():
            partitions = []
            for written, info in staged:
                sealed.record(written.staged.rel, written.key)
                partitions.append(
                    Partition.objects.create(
                        view=view,
                        version=view.version,
                        region=view.region,
                        date=info["date"],
                        path=written.staged.rel,
                        rows=info["rows"],
                        min_event_at=_from_us(info["min"]),
                        max_event_at=_from_us(info["max"]),
                        origin=origin,
                        ingested_by=actor,
                    )
                )
            for written, _ in staged:
                written.staged.commit()
            if seal:  # a view that gained PII: its older plain files are sealed with this write
                seal_view_files(view)
    except BaseException:
        _discard(staged)
        raise
    return partitions


def _discard(staged: list[tuple[sealed.Written, dict]]) -> None:
    """Remove files written for rows that were not committed (each one, even when one fails)."""
    for written, _ in staged:
        try:
            written.staged.discard()
        except Exception:
            log.exception("could not remove the uncommitted feature file %s", written.staged.rel)


@contextlib.contextmanager
def writing_partitions() -> Iterator[Callable[[list[Partition]], list[Partition]]]:
    """A transaction around `write_partitions` and what else must commit with its rows: when it
    fails after the files were written (a later query, the commit itself), the files of the
    partitions passed to the yielded function are deleted, as `write_partitions` does for its own
    failures. Their rows and data keys went with the rollback."""
    kept: list[str] = []

    def written(partitions: list[Partition]) -> list[Partition]:
        kept.extend(p.path for p in partitions)
        return partitions

    try:
        with transaction.atomic():
            yield written
    except BaseException:
        try:
            filestore.delete(kept)
        except Exception:
            log.exception("could not remove the uncommitted feature files %s", kept)
        raise


def holds_pii(view: FeatureView) -> bool:
    """Whether the view's files are written sealed (apps/features/sealed.py): it has a PII feature."""
    return bool(view.pii_features)


def seal_view_files(view: FeatureView) -> int:
    """Seal every plain partition file of `view` (any version) where it lies; returns how many.
    Files with a data key already are skipped without being opened, so a write to a view whose
    files are all sealed costs one query here, however many files it has (`features_encrypt_pii`
    checks every file's bytes, for one left plain by a crash after its key was recorded)."""
    count = 0
    rels = list(Partition.objects.filter(view=view).order_by("pk").values_list("path", flat=True))
    keyed = sealed.with_keys(rels)
    for rel in rels:
        if rel not in keyed and filestore.exists(rel) and sealed.seal_in_place(rel):
            count += 1
    return count


def pii_partition_paths() -> list[str]:
    """Files of this region's views with PII features (sealed or not yet), for `features_encrypt_pii`."""
    views = [v for v in FeatureView.objects.filter(region=process_region()).only("pk", "features") if holds_pii(v)]
    return list(Partition.objects.filter(view__in=views).order_by("pk").values_list("path", flat=True))


def _from_us(micros: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)


def partitions_of(view: FeatureView, version: int | None = None, start=None, end=None):
    qs = Partition.objects.filter(view=view, version=version or view.version)
    if start is not None:
        qs = qs.filter(max_event_at__gte=start)
    if end is not None:
        qs = qs.filter(min_event_at__lt=end)
    return qs.order_by("date", "id")


def read_view(view: FeatureView, *, version: int | None = None, start=None, end=None, columns=None) -> pa.Table:
    """All committed rows of a view version with start <= event_timestamp < end (caller checks residency).

    Files written before a compatible schema change lack the newer features; those read as nulls.
    """
    version = version or view.version
    if version == view.version:
        features = view.features
    else:
        features = FeatureViewVersion.objects.get(view=view, version=version).features
    schema = table_schema(view.entity.join_keys, features)
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    tables = []
    for part in partitions_of(view, version, start, end):
        table = sealed.read_table(part.path, columns=schema.names, present_only=True)
        present = set(table.column_names)
        for field in schema:
            if field.name not in present:
                table = table.append_column(field, pa.nulls(table.num_rows, field.type))
        tables.append(table.select(schema.names).cast(schema))
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if start is not None or end is not None:
        ts = table.column(EVENT_TS)
        mask = None
        if start is not None:
            mask = pc.greater_equal(ts, pa.scalar(start, TS_TYPE))
        if end is not None:
            upper = pc.less(ts, pa.scalar(end, TS_TYPE))
            mask = upper if mask is None else pc.and_(mask, upper)
        table = table.filter(mask)
    return table


def delete_partitions_before(*, view: FeatureView, cutoff: dt.datetime) -> dict:
    """Forget every partition (any version) whose newest row is older than `cutoff`: whole files only.

    Call inside a transaction: the rows go with it and the files are unlinked once it commits. A file
    without a row is never read, so readers see each partition whole or not at all, and a rollback
    leaves every file in place.
    """
    parts = list(
        Partition.objects.select_for_update().filter(view=view, max_event_at__lt=cutoff).order_by("version", "date")
    )
    paths = [p.path for p in parts]
    if parts:
        Partition.objects.filter(pk__in=[p.pk for p in parts]).delete()
        transaction.on_commit(lambda: remove_files(paths))
    return {
        "partitions": len(parts),
        "rows": sum(p.rows for p in parts),
        "files": paths,
        "dates": sorted({p.date.isoformat() for p in parts}),
        "versions": sorted({p.version for p in parts}),
    }


def remove_files(paths: list[str]) -> None:
    """Delete partition files (and the keys of sealed ones); on disk, their date folders once empty."""
    sealed.forget(paths)
    filestore.delete(paths)


# --- one partition at a time: data-subject requests (apps.privacy) read and rewrite files ----------
# These read and write the same files as `read_view` and `write_partitions`: whatever those do to
# the bytes on disk (encryption of PII views' files), these must do too.


def partition_read(part: Partition, *, columns: list[str] | None = None) -> pa.Table:
    """The rows of one partition file, with the columns it was written with (or those of `columns`
    it has). The caller checks residency."""
    return sealed.read_table(part.path, columns=columns, present_only=True)


def file_sha256(rel_path: str) -> str:
    """SHA-256 of a stored file's bytes as they are stored (ciphertext for a sealed file)."""
    return filestore.sha256(rel_path)


def partition_replace(*, part: Partition, table: pa.Table) -> str | None:
    """Replace a partition's file by `table` (some of its rows): returns the new file's path, or
    None when no row is left (the partition is deleted).

    Call inside a transaction, with `part` selected for update. The new file is written beside the
    old one under a new name and the row points at it; the old file is unlinked once the
    transaction commits (a rollback keeps it, and the new file is never read without its row)."""
    old = part.path
    if table.num_rows == 0:
        part.delete()
        transaction.on_commit(lambda: remove_files([old]))
        return None
    rel = f"{old.rsplit('/', 1)[0]}/part-{uuid.uuid4().hex}.parquet"
    written = sealed.write_table(table, rel, seal=holds_pii(part.view))
    try:
        sealed.record(rel, written.key)
        ts = table.column(EVENT_TS).combine_chunks().view(pa.int64()).to_numpy(zero_copy_only=False)
        part.path, part.rows = rel, table.num_rows
        part.min_event_at, part.max_event_at = _from_us(int(ts.min())), _from_us(int(ts.max()))
        part.save(update_fields=["path", "rows", "min_event_at", "max_event_at"])
        written.staged.commit()
    except BaseException:
        written.staged.discard()
        raise
    transaction.on_commit(lambda: remove_files([old]))
    return part.path
