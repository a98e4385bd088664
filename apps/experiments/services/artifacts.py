"""Run artifacts: path validation, the size limit, recording files kept outside the portal,
encrypted uploads into the vault (all or nothing) and audited, integrity-checked downloads.
Adding needs change rights on the run's experiment, downloading needs view rights.
"""

from __future__ import annotations

import itertools
import re
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core import residency, vault
from apps.core.audit import audit_event
from apps.core.errors import IntegrityFailure, NotFound, TooLarge
from apps.core.permissions import require
from apps.experiments.models import Run, RunArtifact

ARTIFACT_PURPOSE = "experiments.artifact"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# --- artifacts ----------------------------------------------------------------------------------
def max_artifact_bytes() -> int:
    return settings.EXPERIMENTS_MAX_ARTIFACT_BYTES


def clean_artifact_path(path) -> str:
    """A relative path of 1 to 500 characters: no leading '/', no empty, '.' or '..' parts."""
    path = path.strip() if isinstance(path, str) else ""
    parts = path.split("/")
    if (
        not path
        or len(path) > 500
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or _CONTROL_RE.search(path)
    ):
        raise ValidationError(
            {"path": ["Give a relative artifact path without '..' (at most 500 characters), e.g. plots/loss.png."]}
        )
    return path


def _replace_artifact(run: Run, path: str, **fields) -> RunArtifact:
    """Inside a transaction: drop the run's artifact at `path` (its vault blob goes with it, see
    models._delete_artifact_blob) and record the new one. The run row is locked so that two
    uploads of the same path queue instead of clashing on the unique constraint."""
    Run.objects.select_for_update().only("id").get(pk=run.pk)
    for old in RunArtifact.objects.filter(run=run, path=path):
        old.delete()
    return RunArtifact.objects.create(run=run, path=path, **fields)


def run_artifact_add(*, run: Run, actor, path: str, size: int, digest: str = "", uri: str = "") -> RunArtifact:
    """Record a file the run produced that lives outside the portal (`uri`); see
    `run_artifact_upload` for files stored in the vault. Change rights on the experiment."""
    require(actor, "change", run.experiment)
    path = clean_artifact_path(path)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValidationError({"size": ["Size is a non-negative number of bytes."]})
    with transaction.atomic():
        return _replace_artifact(run, path, size=size, digest=(digest or "")[:80], uri=(uri or "")[:1000])


def run_artifact_upload(*, run: Run, actor, src: BinaryIO, size: int, path: str) -> RunArtifact:
    """Encrypt `src` into the vault and record it as the run's artifact at `path`, replacing (and
    deleting) any artifact already there. On any failure nothing is left behind: no row, no file."""
    require(actor, "change", run.experiment)
    path = clean_artifact_path(path)
    residency.check_held_here(run.region, actor=actor, obj=run, action="store artifacts of")
    limit = max_artifact_bytes()
    if size > limit:
        raise TooLarge(f"The file is {size:,} bytes; the limit is {limit:,} bytes (EXPERIMENTS_MAX_ARTIFACT_BYTES).")
    # Encrypt before the transaction: a large upload must not hold the database lock.
    name, result = vault.blob_write(src, purpose=ARTIFACT_PURPOSE)
    try:
        if result.plaintext_size > limit:  # the declared size was wrong
            raise TooLarge(f"The file is over the limit of {limit:,} bytes (EXPERIMENTS_MAX_ARTIFACT_BYTES).")
        with transaction.atomic():
            blob = vault.blob_record(name, result, purpose=ARTIFACT_PURPOSE)
            artifact = _replace_artifact(
                run, path, size=result.plaintext_size, digest=f"sha256:{result.sha256}", blob=blob
            )
            audit_event(
                actor=actor,
                event="artifact.upload",
                obj=artifact,
                data={"run": run.pk, "path": path, "sha256": result.sha256, "size": result.plaintext_size},
            )
    except BaseException:
        vault.blob_discard(name)
        raise
    return artifact


def run_artifact_open(*, artifact: RunArtifact, actor, request=None):
    """Check permission, start decrypting (the first chunk is checked now) and audit the download.
    Returns (chunks, size, filename).

    Raises `NotFound` for an artifact kept outside the portal (it has only a `uri`) and
    `IntegrityFailure`, audited, when the stored file was tampered with (no byte is sent)."""
    run = artifact.run
    require(actor, "view", run.experiment)
    residency.check_held_here(run.region, actor=actor, obj=artifact, action="download", request=request)
    if artifact.blob_id is None:
        where = f" at {artifact.uri}" if artifact.uri else ""
        raise NotFound(f"This artifact is stored outside the portal{where}; fetch it from there.")
    blob = artifact.blob
    data = {"run": run.pk, "path": artifact.path, "sha256": blob.sha256}
    try:
        chunks = vault.blob_chunks(blob)
        first = next(chunks, b"")  # a small tampered file fails here, before any byte is sent
    except vault.VaultError as exc:
        audit_event(
            actor=actor,
            event="artifact.integrity_error",
            obj=artifact,
            data={**data, "error": str(exc)},
            request=request,
        )
        raise IntegrityFailure(
            f"The stored artifact failed its integrity check and was not sent ({exc}). "
            "It was changed in storage: restore it from backup or upload it again."
        ) from None
    audit_event(actor=actor, event="artifact.download", obj=artifact, data=data, request=request)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", artifact.path.rsplit("/", 1)[-1]) or "artifact"
    return (itertools.chain([first], chunks) if first else iter(())), blob.plaintext_size, filename
