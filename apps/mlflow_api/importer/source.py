"""What the importer reads from an MLflow tracking store, whatever the store: plain records and the
`MlflowReader` interface both readers (an mlruns folder, a tracking server's REST API) implement.

No Django here: readers only read, the importer (`importer.py`) decides and writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

# MLflow's RunStatus numbers (the FileStore writes them as integers) and names (the REST API).
RUN_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


class SourceError(Exception):
    """The store as a whole cannot be read (missing folder, unreachable server, refused token):
    the command stops with this message and exit code 1."""


class ItemError(Exception):
    """One item (an experiment, a run, a metric series, an artifact, a model version) cannot be
    read: it is counted as failed in the summary and the import goes on."""


@dataclass
class SourceExperiment:
    experiment_id: str
    name: str
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class SourceRun:
    run_id: str
    experiment_id: str
    name: str
    status: str  # RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    start_time: int | None  # ms since the epoch
    end_time: int | None
    lifecycle_stage: str = "active"
    user_id: str = ""
    artifact_uri: str = ""
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metric_keys: list[str] = field(default_factory=list)


@dataclass
class SourceArtifact:
    path: str  # relative to the run's artifact root, '/'-separated
    size: int


@dataclass
class SourceModel:
    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version


@dataclass
class SourceVersion:
    name: str
    version: str
    source: str  # runs:/<id>/<path>, models:/<id>, an artifact URI or a local path
    run_id: str = ""
    description: str = ""
    status: str = "READY"
    tags: dict[str, str] = field(default_factory=dict)


class MlflowReader(Protocol):
    """One MLflow tracking store, read-only. Listing methods raise `SourceError` when the store
    cannot be read at all and `ItemError` for one bad item (readers may also yield an `ItemError`
    in place of an item so the caller can count it and go on)."""

    description: str

    def experiments(self) -> Iterator[SourceExperiment | ItemError]: ...

    def runs(self, experiment: SourceExperiment) -> Iterator[SourceRun | ItemError]: ...

    def metric_history(self, run: SourceRun, key: str) -> list[dict]:
        """[{key, value, step, timestamp}] in logged order (value a float; NaN and inf included)."""

    def artifacts(self, run: SourceRun) -> list[SourceArtifact]: ...

    def open_artifact(self, run: SourceRun, path: str) -> AbstractContextManager[BinaryIO]: ...

    def models(self) -> Iterator[SourceModel | ItemError]: ...

    def versions(self, model: SourceModel) -> Iterator[SourceVersion | ItemError]: ...

    def version_onnx(self, version: SourceVersion) -> AbstractContextManager[Path]:
        """A local path to the version's ONNX file (the source itself, or the one .onnx file in
        the source folder); `ItemError` when there is none."""

    def close(self) -> None: ...


def pick_onnx(candidates: list[str], where: str) -> str:
    """The one ONNX file among artifact paths (the source itself or `model.onnx` in an MLflow model
    folder); `ItemError` naming `where` when there is none or several."""
    onnx = [c for c in candidates if c.lower().endswith(".onnx")]
    if len(onnx) > 1:
        named = [c for c in onnx if c.rsplit("/", 1)[-1] == "model.onnx"]
        onnx = named if len(named) == 1 else onnx
    if not onnx:
        raise ItemError(f"{where} holds no .onnx file; only ONNX model versions are imported.")
    if len(onnx) > 1:
        raise ItemError(f"{where} holds several .onnx files ({', '.join(onnx[:3])}); cannot tell which is the model.")
    return onnx[0]
