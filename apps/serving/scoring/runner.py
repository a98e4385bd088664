"""The body of the `serving.score` task: read the input in chunks, run the model, write each
chunk's predictions as an encrypted part, then join the parts into one predictions file.

Resumable: every finished chunk is a vault blob recorded in `job.parts` with `rows_done`; a
redelivered or recovered job skips that many rows and goes on. Never twice at once: a delivery
first takes the job's lease (apps/serving/scoring/lease.py); one that finds it held returns
`duplicate`. Only the job's current message runs it: a delivery whose task id is no longer the
row's `celery_task_id` (recovery sent a new one) returns `stale`. A cancel is seen between chunks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core import residency, vault
from apps.core.audit import acting_as
from apps.core.errors import DomainError, IntegrityFailure
from apps.core.models import VaultBlob
from apps.features import offline
from apps.features.training_sets import training_set_local_file
from apps.serving.inference.runtime import ModelLoadError, session_for
from apps.serving.models import ScoringJob
from apps.serving.scoring import columns as cols
from apps.serving.scoring.lease import ScoringLease
from apps.serving.scoring.states import State, scoring_publish, scoring_transition

log = logging.getLogger(__name__)
DUPLICATE = "duplicate"
STALE = "stale"
RELATED = ("owner", "version__model", "version__artifact", "input_blob", "training_set")


class ScoringFailed(Exception):
    """A reason to fail the job, in words for its owner."""


def execute(job_id: int, *, hostname: str = "", task_id: str | None = None) -> str:
    """Run (or resume) the job once; returns its state, or `skipped`, `stale` or `duplicate`."""
    job = ScoringJob.objects.select_related(*RELATED).filter(pk=job_id).first()
    if job is None or job.is_terminal:
        return "skipped"
    if task_id and job.celery_task_id and task_id != job.celery_task_id:
        log.warning("scoring job %s: message %s is stale (now %s)", job.pk, task_id, job.celery_task_id)
        return STALE
    lease = ScoringLease(job, hostname=hostname)
    if not lease.acquire():
        log.warning("scoring job %s: another delivery holds its lease; not running it twice", job.pk)
        return DUPLICATE
    try:
        with acting_as(job.owner):
            return _execute(job, hostname)
    finally:
        lease.release()


def _execute(job: ScoringJob, hostname: str) -> str:
    job = _start(job, hostname)
    if job.state != State.RUNNING:
        return job.state
    try:
        return _score(job)
    except (ScoringFailed, cols.InputError, ModelLoadError) as exc:
        return _fail(job, str(exc))
    except ValidationError as exc:
        return _fail(job, "; ".join(exc.messages))
    except (DomainError, vault.VaultError) as exc:  # residency, a tampered or missing blob
        return _fail(job, str(exc))
    except Exception as exc:  # anything else still ends the job, with the reason in words
        log.exception("scoring job %s failed", job.pk)
        return _fail(job, f"{type(exc).__name__}: {exc}")


def _locked(job: ScoringJob) -> ScoringJob:
    return ScoringJob.objects.select_for_update(of=("self",)).select_related(*RELATED).get(pk=job.pk)


def _start(job: ScoringJob, hostname: str) -> ScoringJob:
    with transaction.atomic():
        locked = _locked(job)
        if locked.is_terminal:
            return locked
        if locked.cancel_requested:
            return scoring_transition(job=locked, to=State.CANCELLED, error="Cancelled before it started.")
        return scoring_transition(
            job=locked, to=State.RUNNING, attempts=locked.attempts + 1, worker=(hostname or "worker")[:200]
        )


def _score(job: ScoringJob) -> str:
    residency.check_held_here(job.version.region, actor=job.owner, obj=job.version, action="score with")
    model = session_for(job.version)
    signature = job.version.signature
    plan: dict[str, list[str]] = job.source["inputs"]
    keep: list[str] = job.source.get("keep") or []
    numeric = list(dict.fromkeys(c for names in plan.values() for c in names))
    wanted = list(dict.fromkeys([*keep, *numeric]))
    order = [o["name"] for o in signature.get("outputs") or []]
    with _input_file(job) as (path, fmt, input_lineage):
        if job.rows_total is None:
            job.rows_total = cols.count_rows(path, fmt, wanted[0])
            job.save(update_fields=["rows_total", "updated_at"])
        start = job.rows_done
        chunks = cols.read_chunks(
            path, fmt, columns=wanted, numeric=numeric if fmt == "csv" else [],
            chunk_rows=settings.SERVING_SCORING_CHUNK_ROWS, skip_rows=start,
        )  # fmt: skip
        for chunk in chunks:
            if _cancel_requested(job):
                return _cancel(job)
            outputs = model.run(cols.feeds_of(chunk, plan, signature, start))
            keys = chunk.select(keep) if keep else None
            table = cols.predictions_of(outputs, order or list(outputs), start=start, keys=keys)
            if not _part_save(job, table):
                return job.state
            start += chunk.num_rows
    if _cancel_requested(job):
        return _cancel(job)
    if job.rows_done == 0:
        raise ScoringFailed("The input has no rows; there is nothing to score.")
    return _finish(job, input_lineage)


@contextlib.contextmanager
def _input_file(job: ScoringJob) -> Iterator[tuple[str, str, dict]]:
    """(local path, format, lineage of the input): an upload is decrypted into a temporary file
    (streamed, never held in memory); a training set is read where it lies, after the residency
    check and a streamed check of its digest."""
    if job.training_set_id:
        found = job.training_set
        offline.check_residency(found.region, actor=job.owner, obj=found, action="scoring-read")
        with contextlib.ExitStack() as stack:
            try:  # a sealed set (PII) is decrypted into a private temporary file
                path = stack.enter_context(training_set_local_file(found))
            except (IntegrityFailure, FileNotFoundError):
                raise ScoringFailed(
                    f"Training set {found.pk} is missing or does not match its digest (it was changed); none of it "
                    "was used."
                ) from None
            yield str(path), "parquet", {"training_set": found.pk, "training_set_digest": found.digest}
        return
    if job.input_blob is None:
        raise ScoringFailed("The job's input is gone (the training set was deleted).")
    with tempfile.TemporaryDirectory(prefix="scoring-") as folder:
        path = Path(folder) / f"input.{job.source.get('format', 'csv')}"
        with path.open("wb") as out:
            for block in vault.blob_chunks(job.input_blob):
                out.write(block)
        yield str(path), job.source.get("format", "csv"), {"input_digest": job.input_blob.sha256}


def _cancel_requested(job: ScoringJob) -> bool:
    return ScoringJob.objects.filter(pk=job.pk, cancel_requested=True).exists()


def _cancel(job: ScoringJob) -> str:
    with transaction.atomic():
        locked = _locked(job)
        if not locked.is_terminal:
            scoring_transition(job=locked, to=State.CANCELLED, error=f"Cancelled after {locked.rows_done:,} rows.")
        return locked.state


def _fail(job: ScoringJob, message: str) -> str:
    with transaction.atomic():
        locked = _locked(job)
        if not locked.is_terminal:
            scoring_transition(job=locked, to=State.FAILED, error=message[:4000])
        return locked.state


def _part_save(job: ScoringJob, table: pa.Table) -> bool:
    """Record one chunk's predictions as a part (the resume point); False when the job has moved
    on meanwhile (cancelled, or another delivery got further), and the part is discarded."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    name, result = vault.blob_write(buffer, purpose="serving.scoring-part")
    try:
        with transaction.atomic():
            locked = _locked(job)
            if locked.state != State.RUNNING or locked.rows_done != job.rows_done:
                vault.blob_discard(name)
                job.state = locked.state
                return False
            blob = vault.blob_record(name, result, purpose="serving.scoring-part")
            job.parts = [*locked.parts, {"blob": blob.pk, "rows": table.num_rows}]
            job.rows_done = locked.rows_done + table.num_rows
            job.progress = min(job.rows_done / job.rows_total, 0.999) if job.rows_total else 0.0
            job.save(update_fields=["parts", "rows_done", "progress", "updated_at"])
            scoring_publish(job)
    except BaseException:
        vault.blob_discard(name)
        raise
    return True


def _finish(job: ScoringJob, input_lineage: dict) -> str:
    """Join the parts into one Parquet file, encrypt it as the job's output, drop the parts."""
    with tempfile.TemporaryDirectory(prefix="scoring-") as folder:
        path = Path(folder) / "predictions.parquet"
        writer = None
        blobs = VaultBlob.objects.in_bulk([p["blob"] for p in job.parts])
        for part in job.parts:
            table = pq.read_table(io.BytesIO(vault.blob_read(blobs[part["blob"]])))
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
        with path.open("rb") as handle:
            name, result = vault.blob_write(handle, purpose="serving.scoring-output")
    try:
        with transaction.atomic():
            locked = _locked(job)
            if locked.state != State.RUNNING:
                vault.blob_discard(name)
                return locked.state
            if locked.cancel_requested:
                vault.blob_discard(name)
                return _cancel(locked)
            blob = vault.blob_record(name, result, purpose="serving.scoring-output")
            lineage = {
                "model": job.version.model.name, "version": job.version.version, **input_lineage,
                "rows": locked.rows_done, "chunks": len(locked.parts),
            }  # fmt: skip
            scoring_transition(
                job=locked, to=State.SUCCEEDED, output_blob=blob, digest=result.sha256, lineage=lineage,
                progress=1.0, rows_total=locked.rows_done,
            )  # fmt: skip
            return locked.state
    except BaseException:
        vault.blob_discard(name)
        raise
