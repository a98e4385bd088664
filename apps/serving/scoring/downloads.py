"""A succeeded job's predictions on their way out: Parquet as stored (decrypted while sent), or
CSV converted batch by batch from it. Neither is ever held whole in memory."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError

from apps.core import vault
from apps.core.audit import audit_event
from apps.core.errors import Conflict
from apps.core.permissions import require
from apps.serving.models import ScoringJob

FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv; charset=utf-8"}
CSV_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Predictions:
    chunks: Iterator[bytes]
    content_type: str
    filename: str
    size: int | None
    sha256: str | None


def predictions_download(*, job: ScoringJob, actor, fmt: str = "parquet", request=None) -> Predictions:
    """The predictions of `job` in `fmt` (parquet or csv), audited. The caller must view the job;
    `Conflict` until it has succeeded. The Parquet blob's header is checked before this returns
    (a tampered blob fails here, before a byte is sent)."""
    require(actor, "view", job)
    if fmt not in FORMATS:
        raise ValidationError({"format": [f"Use one of {', '.join(FORMATS)}."]})
    if job.state != ScoringJob.State.SUCCEEDED or job.output_blob is None:
        raise Conflict(f"Scoring job {job.pk} is {job.state}; its predictions are ready once it has succeeded.")
    chunks = vault.blob_chunks(job.output_blob)
    audit_event(actor=actor, event="scoring.download", obj=job, request=request, data={"format": fmt})
    name = f"predictions-{job.pk}.{fmt}"
    if fmt == "parquet":
        return Predictions(chunks, FORMATS[fmt], name, job.output_blob.plaintext_size, job.digest)
    return Predictions(_csv_chunks(chunks), FORMATS[fmt], name, None, None)


def _csv_chunks(parquet_chunks: Iterator[bytes]) -> Iterator[bytes]:
    """CSV from the decrypted Parquet: spooled to a private temporary file (Parquet's footer is at
    its end), then written out batch by batch; the file goes when the stream ends or is dropped."""
    handle, path = tempfile.mkstemp(prefix="scoring-", suffix=".parquet")
    try:
        with os.fdopen(handle, "wb") as out:
            for block in parquet_chunks:
                out.write(block)
        source = pq.ParquetFile(path)
        sink = io.BytesIO()
        header = True
        for batch in source.iter_batches(batch_size=CSV_BATCH_ROWS):
            pacsv.write_csv(batch, sink, write_options=pacsv.WriteOptions(include_header=header))
            header = False
            yield sink.getvalue()
            sink.seek(0)
            sink.truncate()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
