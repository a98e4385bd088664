"""Reads an `mlruns` folder in MLflow's FileStore layout (what `MLFLOW_TRACKING_URI=file:///...`
writes), read-only:

    <exp_id>/meta.yaml, <exp_id>/tags/<key>
    <exp_id>/<run_id>/meta.yaml, params/<key>, metrics/<key> ("<ms> <value> <step>" lines), tags/<key>,
        artifacts/...                      (keys with '/' are nested folders)
    <exp_id>/models/<model_id>/...         (MLflow 3 logged models: the `models:/m-...` sources)
    models/<name>/meta.yaml, tags/, aliases/<alias>, version-<n>/meta.yaml, version-<n>/tags/

Deleted experiments live in `.trash/` and are not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import yaml

from apps.mlflow_api.importer.source import (
    RUN_STATUSES,
    ItemError,
    SourceArtifact,
    SourceError,
    SourceExperiment,
    SourceModel,
    SourceRun,
    SourceVersion,
    pick_onnx,
)

# Folders inside an experiment that are not runs (MLflow 3 keeps logged models, datasets and
# traces there).
NOT_RUNS = frozenset({"models", "datasets", "traces", "tags", "outputs"})


def local_path(uri: str) -> Path | None:
    """The local path of a `file:` URI or a plain path; None for any other scheme."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme or (len(parts.scheme) == 1 and uri[1:2] == ":"):  # a path (or a drive letter)
        return Path(uri)
    return None


def read_meta(path: Path) -> dict:
    """A meta.yaml as a dict; `ItemError` naming the file when it is missing or not valid YAML."""
    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ItemError(f"{path} is missing.") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ItemError(
            f"{path} cannot be read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}."
        ) from None
    if not isinstance(meta, dict):
        raise ItemError(f"{path} is not an MLflow meta.yaml (expected a mapping of fields).")
    return meta


def read_key_files(folder: Path) -> dict[str, str]:
    """params/ or tags/: one file per key (nested folders for keys with '/'), the value as text."""
    if not folder.is_dir():
        return {}
    values = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            values[path.relative_to(folder).as_posix()] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ItemError(f"{path} cannot be read: {exc}.") from None
    return values


def _aliases(meta: dict, folder: Path) -> dict[str, str]:
    """MLflow 3 keeps a model's aliases in its meta.yaml and as aliases/<alias> files: either will do."""
    found = {k: v.strip() for k, v in read_key_files(folder / "aliases").items()}
    if isinstance(meta.get("aliases"), dict):
        found.update({str(k): str(v) for k, v in meta["aliases"].items()})
    return found


def _ms(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class FileStoreReader:
    """`MlflowReader` over an mlruns folder."""

    def __init__(self, root: Path):
        self.root = root.expanduser().resolve()
        self.description = f"mlruns folder {self.root}"
        if not self.root.is_dir():
            raise SourceError(f"{root} is not a folder: give an mlruns folder or an http(s) tracking URI.")
        if not any(self._experiment_dirs()) and not (self.root / "models").is_dir():
            raise SourceError(
                f"{self.root} does not look like an mlruns folder: no <experiment id>/meta.yaml and no models/ in it."
            )
        self._run_dirs: dict[str, Path] = {}
        self._experiment_folders: dict[str, Path] = {}

    # --- experiments and runs --------------------------------------------------------------------
    def _experiment_dirs(self) -> Iterator[Path]:
        try:
            entries = sorted(self.root.iterdir(), key=lambda p: (len(p.name), p.name))
        except OSError as exc:
            raise SourceError(f"{self.root} cannot be read: {exc}") from None
        for path in entries:
            if path.is_dir() and not path.name.startswith(".") and (path / "meta.yaml").exists():
                yield path

    def experiments(self) -> Iterator[SourceExperiment | ItemError]:
        for folder in self._experiment_dirs():
            try:
                meta = read_meta(folder / "meta.yaml")
                if not meta.get("name"):
                    raise ItemError(f"{folder / 'meta.yaml'} names no experiment.")
                experiment_id = str(meta.get("experiment_id", folder.name))
                self._experiment_folders[experiment_id] = folder
                yield SourceExperiment(
                    experiment_id=experiment_id,
                    name=str(meta["name"]),
                    lifecycle_stage=str(meta.get("lifecycle_stage") or "active"),
                    tags=read_key_files(folder / "tags"),
                )
            except ItemError as exc:
                yield exc

    def runs(self, experiment: SourceExperiment) -> Iterator[SourceRun | ItemError]:
        folder = self._experiment_folders.get(experiment.experiment_id, self.root / experiment.experiment_id)
        try:
            found = sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in NOT_RUNS)
        except OSError as exc:
            yield ItemError(f"the runs of experiment {experiment.name!r} in {folder} cannot be listed: {exc}")
            return
        for path in found:
            if not (path / "meta.yaml").exists():
                continue
            try:
                yield self._run(path, experiment)
            except ItemError as exc:
                yield exc

    def _run(self, path: Path, experiment: SourceExperiment) -> SourceRun:
        meta = read_meta(path / "meta.yaml")
        run_id = str(meta.get("run_id") or meta.get("run_uuid") or "")
        if not run_id:
            raise ItemError(f"{path / 'meta.yaml'} names no run_id.")
        status = meta.get("status", 3)
        status = RUN_STATUSES.get(status, status) if isinstance(status, int) else str(status).upper()
        tags = read_key_files(path / "tags")
        metrics = path / "metrics"
        keys = (
            sorted(p.relative_to(metrics).as_posix() for p in metrics.rglob("*") if p.is_file())
            if metrics.is_dir()
            else []
        )
        self._run_dirs[run_id] = path
        return SourceRun(
            run_id=run_id,
            experiment_id=experiment.experiment_id,
            name=str(meta.get("run_name") or tags.get("mlflow.runName") or run_id[:8]),
            status=status if status in RUN_STATUSES.values() else "FINISHED",
            start_time=_ms(meta.get("start_time")),
            end_time=_ms(meta.get("end_time")),
            lifecycle_stage=str(meta.get("lifecycle_stage") or "active"),
            user_id=str(meta.get("user_id") or ""),
            artifact_uri=str(meta.get("artifact_uri") or ""),
            params=read_key_files(path / "params"),
            tags=tags,
            metric_keys=keys,
        )

    def metric_history(self, run: SourceRun, key: str) -> list[dict]:
        path = self._run_dir(run) / "metrics" / key
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ItemError(f"metric {key!r} of run {run.run_id}: {exc}.") from None
        points = []
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                timestamp, value = int(fields[0]), float(fields[1])
                step = int(fields[2]) if len(fields) > 2 else 0
            except (IndexError, ValueError):
                raise ItemError(
                    f"{path}, line {number}: expected '<timestamp> <value> <step>', got {line[:80]!r}."
                ) from None
            points.append({"key": key, "value": value, "step": step, "timestamp": timestamp})
        return points

    def _run_dir(self, run: SourceRun) -> Path:
        return self._run_dirs.get(run.run_id) or self.root / run.experiment_id / run.run_id

    # --- artifacts -------------------------------------------------------------------------------
    def _artifact_root(self, run: SourceRun) -> Path:
        declared = local_path(run.artifact_uri)
        if declared is not None and declared.is_dir():
            return declared
        moved = self._run_dir(run) / "artifacts"  # the folder was copied elsewhere since
        if moved.is_dir() or declared is None and not run.artifact_uri:
            return moved
        if declared is None:
            raise ItemError(
                f"run {run.run_id} keeps its artifacts at {run.artifact_uri}, which this reader cannot open."
            )
        return moved

    def artifacts(self, run: SourceRun) -> list[SourceArtifact]:
        root = self._artifact_root(run)
        if not root.is_dir():
            return []
        return [
            SourceArtifact(path=p.relative_to(root).as_posix(), size=p.stat().st_size)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        ]

    @contextmanager
    def open_artifact(self, run: SourceRun, path: str) -> Iterator[BinaryIO]:
        root = self._artifact_root(run)
        target = (root / path).resolve()
        if not target.is_relative_to(root.resolve()):
            raise ItemError(f"artifact {path!r} of run {run.run_id} points outside its artifact folder.")
        try:
            handle = target.open("rb")
        except OSError as exc:
            raise ItemError(f"artifact {path!r} of run {run.run_id}: {exc.strerror or exc}.") from None
        with handle:
            yield handle

    # --- registry --------------------------------------------------------------------------------
    def models(self) -> Iterator[SourceModel | ItemError]:
        folder = self.root / "models"
        if not folder.is_dir():
            return
        for path in sorted(p for p in folder.iterdir() if p.is_dir() and (p / "meta.yaml").exists()):
            try:
                meta = read_meta(path / "meta.yaml")
                yield SourceModel(
                    name=str(meta.get("name") or path.name),
                    description=str(meta.get("description") or ""),
                    tags=read_key_files(path / "tags"),
                    aliases=_aliases(meta, path),
                )
            except ItemError as exc:
                yield exc

    def versions(self, model: SourceModel) -> Iterator[SourceVersion | ItemError]:
        folder = self.root / "models" / model.name
        found = [p for p in folder.glob("version-*") if p.is_dir() and p.name[8:].isdigit()]
        for path in sorted(found, key=lambda p: int(p.name[8:])):
            try:
                meta = read_meta(path / "meta.yaml")
                yield SourceVersion(
                    name=model.name,
                    version=str(meta.get("version") or path.name[8:]),
                    source=str(meta.get("source") or meta.get("storage_location") or ""),
                    run_id=str(meta.get("run_id") or ""),
                    description=str(meta.get("description") or ""),
                    status=str(meta.get("status") or "READY"),
                    tags=read_key_files(path / "tags"),
                )
            except ItemError as exc:
                yield exc

    @contextmanager
    def version_onnx(self, version: SourceVersion) -> Iterator[Path]:
        where = f"model version {version.name} v{version.version} (source {version.source or 'none'})"
        found = self._source_path(version)
        if found is None or not found.exists():
            raise ItemError(f"{where}: the source is not in this mlruns folder.")
        if found.is_dir():
            files = [p.relative_to(found).as_posix() for p in found.rglob("*") if p.is_file()]
            found = found / pick_onnx(files, where)
        yield found

    def _source_path(self, version: SourceVersion) -> Path | None:
        source = version.source
        if source.startswith("runs:/"):
            run_id, _, rest = source[len("runs:/") :].partition("/")
            run_dir = self._find_run_dir(run_id)
            return None if run_dir is None else run_dir / "artifacts" / rest
        if source.startswith("models:/"):
            model_id = source[len("models:/") :].strip("/")
            for exp in self._experiment_dirs():
                candidate = exp / "models" / model_id / "artifacts"
                if candidate.is_dir():
                    return candidate
            return None
        path = local_path(source)
        if path is not None and not path.exists():
            # the folder was copied since: find the same <exp>/<run or models>/... tail under root
            parts = path.parts
            for i in range(len(parts)):
                if (self.root / parts[i] / "meta.yaml").exists():
                    return self.root.joinpath(*parts[i:])
        return path

    def _find_run_dir(self, run_id: str) -> Path | None:
        if run_id in self._run_dirs:
            return self._run_dirs[run_id]
        for exp in self._experiment_dirs():
            if (exp / run_id / "meta.yaml").exists():
                return exp / run_id
        return None

    def close(self) -> None:
        return None
