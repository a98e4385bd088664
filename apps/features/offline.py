"""The offline store: Parquet files per region, view, version and event date.

Layout: <FEATURE_STORE_ROOT>/<region>/<view>/v<version>/date=YYYY-MM-DD/part-<uuid>.parquet.
A file counts only once its Partition row is committed, and rows and files are written
together: temp file in the same folder, then os.replace inside the transaction.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction

from apps.core.audit import audit_event
from apps.core.errors import Forbidden
from apps.features.models import FeatureView, FeatureViewVersion, Partition
from apps.features.schema import EVENT_TS, TS_TYPE, table_schema

DAY_US = 86_400_000_000


class ResidencyError(Forbidden):
    """The data lives in another region than this process."""


def store_root() -> Path:
    return Path(settings.FEATURE_STORE_ROOT)


def process_region() -> str:
    return settings.PORTAL_REGION


def check_residency(region: str, *, actor, obj, action: str, request=None) -> None:
    """Refuse (and audit) any read or write of data pinned to another region."""
    here = process_region()
    if region == here:
        return
    audit_event(
        actor=actor,
        event="features.residency_denied",
        obj=obj,
        data={"region": region, "process_region": here, "action": action},
        request=request,
    )
    raise ResidencyError(
        f"{obj} keeps its data in region {region!r}, but this process runs in region {here!r}. "
        f"Run this on the portal or workers of region {region!r} (queue cpu.{region})."
    )


def partition_dir(view: FeatureView, version: int, day: dt.date) -> Path:
    return store_root() / view.region / view.name / f"v{version}" / f"date={day.isoformat()}"


def write_partitions(*, view: FeatureView, table: pa.Table, actor, origin: str = "ingest") -> list[Partition]:
    """Write `table` (already validated) as one file per event date, atomically with its rows."""
    ts = table.column(EVENT_TS).combine_chunks().view(pa.int64()).to_numpy()
    days = ts // DAY_US
    unique_days = np.unique(days)
    staged: list[tuple[Path, Path, dict]] = []
    try:
        for day_number in unique_days:
            mask = days == day_number
            part = table.filter(pa.array(mask)) if len(unique_days) > 1 else table
            day = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_number))
            folder = partition_dir(view, view.version, day)
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"part-{uuid.uuid4().hex}.parquet"
            tmp = folder / f".tmp-{final.name}"
            pq.write_table(part, tmp, compression="zstd")
            day_ts = ts[mask]
            staged.append(
                (tmp, final, {"date": day, "rows": part.num_rows, "min": int(day_ts.min()), "max": int(day_ts.max())})
            )
    except BaseException:
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    moved: list[Path] = []
    try:
        with transaction.atomic():
            partitions = []
            for _tmp, final, info in staged:
                partitions.append(
                    Partition.objects.create(
                        view=view,
                        version=view.version,
                        region=view.region,
                        date=info["date"],
                        path=str(final.relative_to(store_root())),
                        rows=info["rows"],
                        min_event_at=_from_us(info["min"]),
                        max_event_at=_from_us(info["max"]),
                        origin=origin,
                        ingested_by=actor,
                    )
                )
            for tmp, final, _ in staged:
                os.replace(tmp, final)
                moved.append(final)
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        for tmp, _, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return partitions


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
        path = store_root() / part.path
        present = set(pq.read_schema(path).names)
        table = pq.read_table(path, columns=[c for c in schema.names if c in present])
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
    """Unlink partition files, then their date folders once empty."""
    root = store_root()
    for rel in paths:
        path = root / rel
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # other files (or a concurrent write) still there
