"""Where monitoring's numbers come from: a version's training data (the reference), a window of an
endpoint's prediction logs (the current traffic), a window of a feature view's offline store.

Every loader answers plain numpy columns: numeric features as float64 with NaN for a missing
value, text features as object arrays with None, which is what `apps.monitoring.stats` takes.
Drift checks cover tabular models: one graph input of shape `[batch, features]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.catalog.models import ModelVersion
from apps.features.models import FeatureView
from apps.serving.models import PredictionLog

PREDICTION = "prediction"  # the name the prediction distribution is kept under


@dataclass
class Sample:
    columns: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    rows: int
    source: str
    truncated: bool = False


# --- a version's inputs ------------------------------------------------------------------------


def tabular_width(version: ModelVersion) -> int | None:
    """The number of features of a tabular version (None when the width is symbolic); a
    ValidationError naming the version when it is not tabular."""
    inputs = (version.signature or {}).get("inputs") or []
    shape = inputs[0].get("shape") if len(inputs) == 1 else None
    if not shape or len(shape) != 2:
        raise ValidationError(
            {"version": [f"{version} takes {len(inputs)} input(s) of shape {shape or '?'}; drift checks cover tabular "
                         "models with one input of shape [batch, features]."]}
        )  # fmt: skip
    return shape[1] if isinstance(shape[1], int) else None


def feature_names(version: ModelVersion, width: int, hint: list[str] | None = None) -> list[str]:
    """The signature's column names, else the training data's (`hint`), else x0, x1, ..."""
    listed = (version.signature or {}).get("columns")
    for names in (listed, hint):
        if names and len(names) == width:
            return [str(n) for n in names]
    return [f"x{i}" for i in range(width)]


def predictions_of(outputs: dict[str, np.ndarray] | dict[str, list]) -> np.ndarray | None:
    """The prediction distribution from a model's outputs: the first output; a row of several
    scores is a class (argmax, categorical); one number per row is a score (numeric)."""
    for _name, value in outputs.items():
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind in "US":
            return array.astype(object).reshape(-1)
        if array.ndim == 2 and array.shape[1] > 1:
            return array.argmax(axis=1).astype(str).astype(object)
        return array.reshape(len(array), -1)[:, 0].astype(np.float64)
    return None


# --- the reference: the version's training data ---------------------------------------------------


def reference_sample(version: ModelVersion) -> Sample:
    """The training data behind `version` (its training job's training set or demo dataset, or the
    scikit-learn data set the catalog's demo models name), with the model's own predictions on it."""
    width = tabular_width(version)
    X, hint, source = _training_matrix(version)
    if width is not None and X.shape[1] != width:
        raise ValidationError(
            {"version": [f"The training data has {X.shape[1]} features but {version} takes {width}."]}
        )
    limit = settings.MONITORING_PROFILE_MAX_ROWS
    truncated = len(X) > limit
    if truncated:  # an even sample keeps the distribution and bounds the profile's cost
        X = X[np.linspace(0, len(X) - 1, limit).astype(np.int64)]
    names = feature_names(version, X.shape[1], hint)
    columns = {name: np.ascontiguousarray(X[:, i], dtype=np.float64) for i, name in enumerate(names)}
    predicted = _predict(version, X)
    return Sample(
        columns=columns,
        predictions={PREDICTION: predicted} if predicted is not None else {},
        rows=len(X),
        source=source,
        truncated=truncated,
    )


def _training_matrix(version: ModelVersion) -> tuple[np.ndarray, list[str] | None, str]:
    from apps.training.models import TrainingJob

    job = (
        TrainingJob.objects.filter(run_id=version.run_id).select_related("training_set", "owner").first()
        if version.run_id
        else None
    )
    if job is not None and job.training_set_id and "training_set" in (job.data or {}):
        from apps.features.training_sets import training_set_load

        table = training_set_load(job.training_set, actor=job.owner)
        names = list(job.data.get("features") or [])
        X = np.column_stack([_numeric(table.column(n)) for n in names])
        return X, names, f"training-set:{job.training_set.name}"
    dataset = (job.data or {}).get("dataset") if job is not None else None
    lineage = version.training_set or ""
    if not dataset and lineage.startswith(("demo:", "sklearn:")):
        dataset = lineage.split(":", 1)[1].replace("-", "_")
    if not dataset:
        raise ValidationError(
            {"version": [f"{version} names no training data the portal holds ({lineage or 'none recorded'}); "
                         "build its profile from a reference file instead (POST a Parquet or CSV `file`)."]}
        )  # fmt: skip
    from apps.training.engine.datasets import load_dataset

    try:
        data = load_dataset(dataset)
    except ValueError as exc:
        raise ValidationError({"version": [f"{version}: {exc}."]}) from None
    return np.asarray(data.X, dtype=np.float64), _sklearn_names(dataset), f"demo:{dataset}"


def _sklearn_names(dataset: str) -> list[str] | None:
    """The bundled data sets' feature names, from scikit-learn when it is installed."""
    try:
        from sklearn import datasets
    except ImportError:
        return None
    loader = getattr(datasets, f"load_{dataset}", None)
    try:
        return [str(n) for n in loader().feature_names] if loader else None
    except Exception:  # noqa: BLE001  (names are a nicety; the numbers do not depend on them)
        return None


def reference_from_table(version: ModelVersion, table: pa.Table) -> Sample:
    """A reference profile's data from an uploaded table: the version's feature columns by name
    (the signature's or x0, x1, ...), or its only numeric columns in order."""
    width = tabular_width(version)
    numeric = [f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    listed = (version.signature or {}).get("columns")
    wanted = [str(c) for c in listed] if listed else None
    if wanted is None:
        default = [f"x{i}" for i in range(width or len(numeric))]
        wanted = default if all(n in table.schema.names for n in default) and default else numeric
    missing = [c for c in wanted if c not in table.schema.names]
    if missing or not wanted or (width is not None and len(wanted) != width):
        raise ValidationError(
            {"file": [f"{version} takes {width or 'some'} numeric feature columns; the file has "
                      f"{len(numeric)} ({', '.join(numeric[:10]) or 'none'}){' and lacks ' + ', '.join(missing[:5]) if missing else ''}."]}
        )  # fmt: skip
    limit = settings.MONITORING_PROFILE_MAX_ROWS
    if table.num_rows > limit:
        table = table.take(np.linspace(0, table.num_rows - 1, limit).astype(np.int64))
    X = np.column_stack([_numeric(table.column(c)) for c in wanted])
    predicted = _predict(version, X)
    return Sample(
        columns={c: np.ascontiguousarray(X[:, i]) for i, c in enumerate(wanted)},
        predictions={PREDICTION: predicted} if predicted is not None else {},
        rows=len(X),
        source="upload",
    )


def _predict(version: ModelVersion, X: np.ndarray) -> np.ndarray | None:
    """The model's predictions on the reference (in chunks; rows with a missing value skipped)."""
    from apps.serving.inference.runtime import session_for

    model = session_for(version)
    name = model.input_names[0]
    dtype = model.input_dtypes[name]
    keep = ~np.isnan(X).any(axis=1)
    X = X[keep]
    if not len(X):
        return None
    parts = []
    for start in range(0, len(X), 50_000):
        outputs = model.run({name: X[start : start + 50_000].astype(dtype)})
        parts.append(predictions_of(outputs))
    return np.concatenate(parts)


def _numeric(column) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray | pa.Array) and not (
        pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type)
    ):
        raise ValidationError({"file": [f"A feature column holds {column.type} values; features must be numeric."]})
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


# --- the current window: an endpoint's prediction logs --------------------------------------------


def window_sample(*, endpoint, route: str, version: ModelVersion, names: list[str], start, end) -> Sample:
    """The logged live inputs and outputs of `route` served by `version` in [start, end), at most
    MONITORING_WINDOW_MAX_ROWS rows (the newest first)."""
    limit = settings.MONITORING_WINDOW_MAX_ROWS
    logs = (
        PredictionLog.objects.filter(
            endpoint=endpoint, route=route, mode="live", version=version, status=200,
            created_at__gte=start, created_at__lt=end,
        )
        .order_by("-created_at")
        .values_list("inputs", "outputs")
    )  # fmt: skip
    rows: list[list] = []
    predicted: list = []
    truncated = False
    for inputs, outputs in logs.iterator(chunk_size=2000):
        batch = _rows_of(inputs, names)
        if batch is None:
            continue
        rows.extend(batch)
        values = predictions_of(outputs or {})
        predicted.extend(values.tolist() if values is not None and len(values) == len(batch) else [None] * len(batch))
        if len(rows) >= limit:
            truncated = True
            break
    width = len(names)
    X = np.array(rows[:limit], dtype=np.float64) if rows else np.empty((0, width))
    columns = {name: np.ascontiguousarray(X[:, i]) for i, name in enumerate(names)}
    prediction = _as_column(predicted[:limit])
    return Sample(columns=columns, predictions={PREDICTION: prediction} if prediction is not None else {},
                  rows=len(X), source=f"logs:{endpoint.name}/{route}", truncated=truncated)  # fmt: skip


def _rows_of(inputs, names: list[str]) -> list[list] | None:
    if isinstance(inputs, list):
        return [r for r in inputs if isinstance(r, list) and len(r) == len(names)] or None
    if isinstance(inputs, dict) and all(n in inputs for n in names):
        return [list(r) for r in zip(*(inputs[n] for n in names), strict=False)] or None
    return None


def _as_column(values: list) -> np.ndarray | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return np.array([None if v is None else str(v) for v in values], dtype=object)


# --- a feature view's window ---------------------------------------------------------------------


def view_sample(view: FeatureView, *, start, end) -> Sample:
    """The view's feature columns in [start, end) (keys and timestamps left out)."""
    from apps.features.offline import read_view

    names = [f["name"] for f in view.features]
    table = read_view(view, start=start, end=end, columns=None)
    limit = settings.MONITORING_WINDOW_MAX_ROWS
    truncated = table.num_rows > limit
    if truncated:
        table = table.take(np.linspace(0, table.num_rows - 1, limit).astype(np.int64))
    columns = {}
    for name in names:
        column = table.column(name)
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            columns[name] = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        else:
            columns[name] = np.array(pc.cast(column, pa.string()).to_pylist(), dtype=object)
    return Sample(columns=columns, predictions={}, rows=table.num_rows, source=f"view:{view.name}", truncated=truncated)
