"""A script job's working folder on the worker: the unpacked script version, an empty `outputs/`,
and its data as a file (a training set as Parquet, or a catalog artifact), with their digests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from apps.catalog.models import ModelVersion
from apps.core import vault
from apps.core.permissions import require
from apps.features.training_sets import training_set_export
from apps.training.models import TrainingJob
from apps.training.scripts.archive import unpack


class WorkspaceError(Exception):
    """The job's script or data could not be prepared (a reason for its owner)."""


@dataclass(frozen=True)
class Workspace:
    root: Path
    entry: Path
    outputs: Path
    data_path: Path | None
    data_digest: str


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def workspace_prepare(job: TrainingJob, root: Path) -> Workspace:
    """Unpack the job's script version under `root` (an empty folder) and write its data file.

    The script's digest is checked against its version (the vault checks its own integrity too);
    the data is read as the job's owner (their view rights, residency and PII masking, as at launch)."""
    version = job.script_version
    content = vault.blob_read(version.blob, max_bytes=settings.TRAINING_SCRIPT_MAX_BYTES)
    if f"sha256:{hashlib.sha256(content).hexdigest()}" != version.digest:
        raise WorkspaceError(f"The script's stored file does not match its digest {version.digest}.")
    entry = unpack(content, version.kind, version.entry_point, root, max_bytes=settings.TRAINING_SCRIPT_MAX_BYTES)
    if not entry.is_file():
        raise WorkspaceError(f"The entry point {version.entry_point!r} is missing from the script.")
    outputs = root / "outputs"
    outputs.mkdir(exist_ok=True)
    data_path = _data_file(job, root / ".portal-data")
    return Workspace(root, entry, outputs, data_path, _digest(data_path) if data_path else "")


def _data_file(job: TrainingJob, folder: Path) -> Path | None:
    spec = job.data or {}
    if "training_set" in spec:
        if job.training_set is None:
            raise WorkspaceError("The job's training set no longer exists.")
        folder.mkdir()
        path = folder / f"{job.training_set.name}.parquet"
        # The owner's own export (digest-checked, residency-checked, audited): PII columns they may
        # not see unmasked reach the script masked, as a download would.
        export = training_set_export(training_set=job.training_set, actor=job.owner, fmt="parquet")
        with path.open("wb") as out:
            for chunk in export.chunks:
                out.write(chunk)
        return path
    if "artifact" in spec:
        version = ModelVersion.objects.select_related("model", "artifact").filter(pk=spec.get("model_version")).first()
        if version is None:
            raise WorkspaceError(f"The model version {spec['artifact']} no longer exists.")
        require(job.owner, "view", version.model)
        folder.mkdir()
        path = folder / f"{version.model.name}-{version.version}.onnx"
        with path.open("wb") as out:
            for chunk in vault.blob_chunks(version.artifact):
                out.write(chunk)
        return path
    return None
