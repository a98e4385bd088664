"""Prediction logs and per-minute traffic counters, buffered in process and written in batches.

Every answered request adds to the counters of its (endpoint, route, mode, version, minute):
requests, errors, rows, latency sum and histogram (apps/serving/histogram.py); a sampled share
(the endpoint's `log_sample_rate`) and every failed prediction also keep a log entry: inputs,
outputs, route, version, latency, status, error, caller, token prefix and the caller key as a
keyed hash (`ids.pseudonymise_key`; the key itself is never stored). Adding costs a lock and a few
additions; the conversions (JSON, hashes, datetimes) happen when the buffer is written.

A daemon thread per serving process (`start()`, from the ASGI entry point) writes the buffer every
SERVING_LOG_FLUSH_S: one bulk insert of PredictionLog rows and one upsert per TrafficWindow row
(an F() update that also locks the row, then insert-on-miss with an IntegrityError retry, so
processes writing the same minute never lose counts, on SQLite and PostgreSQL alike). Past
SERVING_LOG_BUFFER entries a new entry is dropped and counted in `logs_dropped`; a failing
database loses that batch (logged), never blocks or fails a prediction.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from apps.catalog.models import ModelVersion
from apps.serving import histogram
from apps.serving.ids import pseudonymise_key
from apps.serving.models import Endpoint, PredictionLog, TrafficWindow

log = logging.getLogger(__name__)

# counter slots of one window
REQUESTS, ERRORS, ROWS, LATENCY, HIST, COMPARED, AGREED, ABS_DIFF, SHADOW_DROPPED, LOGS_DROPPED = range(10)
_ADDITIVE = (
    (REQUESTS, "requests"),
    (ERRORS, "errors"),
    (ROWS, "rows"),
    (LATENCY, "latency_sum_ms"),
    (COMPARED, "shadow_compared"),
    (AGREED, "shadow_agreed"),
    (ABS_DIFF, "shadow_abs_diff_sum"),
    (SHADOW_DROPPED, "shadow_dropped"),
    (LOGS_DROPPED, "logs_dropped"),
)
_bucket = histogram.bucket
_BUCKETS = histogram.BUCKETS


def _new_counters() -> list:
    return [0, 0, 0, 0.0, [0] * _BUCKETS, 0, 0, 0.0, 0, 0]


class _Buffer:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[tuple, list] = {}
        self.entries: list[tuple] = []


BUFFER = _Buffer()


def _window(key: tuple) -> list:
    counters = BUFFER.windows.get(key)
    if counters is None:
        counters = BUFFER.windows[key] = _new_counters()
    return counters


def record(
    *,
    endpoint_id: int,
    route: str,
    mode: str,
    version_id: int,
    rows: int,
    latency_ms: float,
    status: int = 200,
    error: str = "",
    entry: tuple | None = None,
) -> None:
    """Count one request; keep `entry` (see `entry_of`) as a log row when given and room is left."""
    now = time.time()
    key = (endpoint_id, route, mode, version_id, int(now // 60))
    with BUFFER.lock:
        counters = _window(key)
        counters[REQUESTS] += 1
        counters[ROWS] += rows
        counters[LATENCY] += latency_ms
        counters[HIST][_bucket(latency_ms)] += 1
        if status >= 500:
            counters[ERRORS] += 1
        if entry is not None:
            if len(BUFFER.entries) < settings.SERVING_LOG_BUFFER:
                BUFFER.entries.append((key[:4], now, latency_ms, status, error, entry))
            else:
                counters[LOGS_DROPPED] += 1


def entry_of(*, prediction_id, key, caller_id, token_prefix, rows, inputs, outputs) -> tuple:
    """A log entry's request-side values, converted only when written (`outputs` may be arrays)."""
    return (prediction_id, key, caller_id, token_prefix, rows, inputs, outputs)


def record_shadow(
    *, endpoint_id: int, route: str, version_id: int, compared: int, agreed: int, abs_diff_sum: float
) -> None:
    """Add a shadow comparison to the shadow route's window."""
    key = (endpoint_id, route, "shadow", version_id, int(time.time() // 60))
    with BUFFER.lock:
        counters = _window(key)
        counters[COMPARED] += compared
        counters[AGREED] += agreed
        counters[ABS_DIFF] += abs_diff_sum


def record_shadow_dropped(*, endpoint_id: int, route: str, version_id: int) -> None:
    key = (endpoint_id, route, "shadow", version_id, int(time.time() // 60))
    with BUFFER.lock:
        _window(key)[SHADOW_DROPPED] += 1


def pending() -> tuple[int, int]:
    """(windows, entries) waiting to be written."""
    with BUFFER.lock:
        return len(BUFFER.windows), len(BUFFER.entries)


def discard() -> None:
    """Forget what is buffered (tests)."""
    with BUFFER.lock:
        BUFFER.windows, BUFFER.entries = {}, []


# --- writing ------------------------------------------------------------------------------------
def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# Written with one executemany of a statement built once: bulk_create rebuilt the SQL text of
# every row on each flush (measured: 34-43 ms of CPU per second of traffic at 4,400 predictions/s,
# under the GIL the event loop needs, which showed as its p99), this costs a few milliseconds.
_COLUMNS = (
    "endpoint_id", "route", "mode", "version_id", "prediction_id", "key_hash", "caller_id", "token_prefix",
    "rows", "inputs", "outputs", "latency_ms", "status", "error", "created_at",
)  # fmt: skip
_PREPARED = ("inputs", "outputs", "created_at")  # converted by their field for the database in use
_YIELD_EVERY = 32


def _log_row(item: tuple) -> dict:
    (endpoint_id, route, mode, version_id), at, latency_ms, status, error, entry = item
    prediction_id, key, caller_id, token_prefix, rows, inputs, outputs = entry
    return {
        "endpoint_id": endpoint_id,
        "route": route,
        "mode": mode,
        "version_id": version_id,
        "prediction_id": prediction_id,
        "key_hash": pseudonymise_key(key) if key is not None else "",
        "caller_id": caller_id,
        "token_prefix": token_prefix or "",
        "rows": rows,
        "inputs": _jsonable(inputs),
        "outputs": _jsonable(outputs),
        "latency_ms": latency_ms,
        "status": status,
        "error": (error or "")[:500],
        "created_at": datetime.fromtimestamp(at, tz=UTC),
    }


def _insert(rows: list[dict]) -> None:
    """One INSERT executed for every row, in one transaction."""
    meta = PredictionLog._meta
    connection = connections[router.db_for_write(PredictionLog)]
    quote = connection.ops.quote_name
    fields = {name: meta.get_field(name) for name in _PREPARED}
    columns = ", ".join(quote(meta.get_field(name).column) for name in _COLUMNS)
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})"  # noqa: S608  quoted names from the model, values are parameters
    params = []
    for start in range(0, len(rows), _YIELD_EVERY):
        params += [
            [fields[name].get_db_prep_save(row[name], connection) if name in fields else row[name] for name in _COLUMNS]
            for row in rows[start : start + _YIELD_EVERY]
        ]
        time.sleep(0)  # hand the GIL to the event loop between small pieces: its requests wait micro-, not milliseconds
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _upsert(key: tuple, counters: list) -> None:
    endpoint_id, route, mode, version_id, minute = key
    at = datetime.fromtimestamp(minute * 60, tz=UTC)
    match = {"endpoint_id": endpoint_id, "route": route, "version_id": version_id, "minute": at}
    changes = {field: F(field) + counters[slot] for slot, field in _ADDITIVE if counters[slot]}
    for _ in range(3):
        try:
            with transaction.atomic():
                rows = TrafficWindow.objects.filter(**match)
                # the update locks the row (PostgreSQL) or the database (SQLite) until commit, so the
                # histogram read and written next cannot interleave with another process's
                if rows.update(**changes) if changes else rows.exists():
                    if any(counters[HIST]):
                        current = rows.values_list("latency_hist", flat=True).first() or []
                        rows.update(latency_hist=histogram.add(current, counters[HIST]))
                    return
                TrafficWindow.objects.create(
                    **match,
                    mode=mode,
                    latency_hist=list(counters[HIST]),
                    **{field: counters[slot] for slot, field in _ADDITIVE},
                )
                return
        except IntegrityError:  # another process inserted the same minute first: add to its row
            continue
    log.warning("could not write the traffic window %s after 3 tries", key)


def _write_entries(rows: list[dict]) -> None:
    """One insert; when an endpoint or version went away meanwhile (a foreign key refused), the
    rows of the ones that still exist are written in a second insert."""
    try:
        _insert(rows)
        return
    except IntegrityError:
        endpoints = set(Endpoint.objects.filter(pk__in={r["endpoint_id"] for r in rows}).values_list("pk", flat=True))
        versions = set(ModelVersion.objects.filter(pk__in={r["version_id"] for r in rows}).values_list("pk", flat=True))
        kept = [r for r in rows if r["endpoint_id"] in endpoints and r["version_id"] in versions]
        if len(kept) < len(rows):
            log.info("dropped %d prediction log entries of deleted endpoints or versions", len(rows) - len(kept))
    except Exception:
        log.exception("lost %d prediction log entries: the database refused them", len(rows))
        return
    try:
        if kept:
            _insert(kept)
    except Exception:
        log.exception("lost %d prediction log entries: the database refused them", len(kept))


def flush() -> None:
    """Write what is buffered now: one bulk insert of log rows, one upsert per window."""
    with BUFFER.lock:
        windows, entries = BUFFER.windows, BUFFER.entries
        BUFFER.windows, BUFFER.entries = {}, []
    if not windows and not entries:
        return
    if entries:
        _write_entries([_log_row(item) for item in entries])
    for key, counters in windows.items():
        try:
            _upsert(key, counters)
        except Exception:
            log.exception("lost the traffic counters of %s: the database refused them", key)


# --- the flusher thread -------------------------------------------------------------------------
class _Flusher:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.paused = False

    def start(self) -> None:
        self.paused = False
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            threading.Thread(target=self._run, args=(self.pid,), name="prediction-logs", daemon=True).start()

    def _run(self, pid: int) -> None:
        while self.pid == pid:
            time.sleep(max(0.05, settings.SERVING_LOG_FLUSH_S))
            if self.paused or not (BUFFER.windows or BUFFER.entries):
                continue  # nothing to write: no database round trip (and no connection) for it
            try:
                flush()
            except Exception:
                log.exception("prediction log flush failed")
            finally:
                close_old_connections()


FLUSHER = _Flusher()


def start() -> None:
    """Write the buffer every SERVING_LOG_FLUSH_S from a daemon thread of this process."""
    FLUSHER.start()


def stop() -> None:
    """Stop the background writes (tests write with `flush()` in their own transaction)."""
    FLUSHER.paused = True


def logs_expire(*, dry_run: bool = False, now=None) -> dict:
    """Retention: delete prediction logs and traffic windows older than SERVING_LOG_RETENTION_DAYS.
    `dry_run` only counts them (`manage.py retention_purge --dry-run`)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SERVING_LOG_RETENTION_DAYS)
    logs = PredictionLog.objects.filter(created_at__lt=cutoff)
    windows = TrafficWindow.objects.filter(minute__lt=cutoff)
    if dry_run:
        return {"logs_due": logs.count(), "windows_due": windows.count(), "cutoff": cutoff.isoformat()}
    logs_deleted, _ = logs.delete()
    windows_deleted, _ = windows.delete()
    return {"logs_deleted": logs_deleted, "windows_deleted": windows_deleted, "cutoff": cutoff.isoformat()}
