"""Training data for a job: a demo dataset that ships with the engine, or a feature-store training set.

`clean_data_spec` runs at launch (validation, permissions, residency region); `load_arrays` runs
in the worker and turns the spec into the X / y arrays the engine trains on.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError

from apps.core.permissions import restrict
from apps.features.models import FeatureView, TrainingSet
from apps.features.training_sets import training_set_load

DEMO_DATASETS = ("wine", "breast_cancer", "digits", "diabetes")
# What each demo dataset is: its task and its number of features per sample (engine/demo_data).
DEMO_DATASET_SHAPES = {
    "wine": ("classification", 13),
    "breast_cancer": ("classification", 30),
    "digits": ("classification", 64),
    "diabetes": ("regression", 10),
}
NON_FEATURE_COLUMNS = ("event_timestamp", "created_timestamp")
MAX_FEATURES = 4096


def datasets_for(template) -> list[str]:
    """The demo datasets a template can train on: same task, and the sample size its input shape
    needs (the digits CNN takes only the 64-pixel digits; a regressor only regression data)."""
    size = math.prod(template.input_shape) if template.input_shape else None
    return [
        name
        for name, (task, features) in DEMO_DATASET_SHAPES.items()
        if task == template.task and (size is None or size == features)
    ]


def clean_data_spec(data: Any, *, actor, template) -> tuple[dict, Any]:
    """Return `(spec, training_set or None)`; raises ValidationError with `data` field errors."""
    if data in (None, "", {}):
        return {"dataset": template.default_dataset}, None
    if not isinstance(data, dict):
        raise ValidationError({"data": ['Give {"dataset": name} or {"training_set": id, "label": column}.']})
    unknown = sorted(set(data) - {"dataset", "training_set", "label", "features"})
    if unknown:
        raise ValidationError({"data": [f"Unknown data field(s): {', '.join(unknown)}."]})
    if "training_set" not in data:
        name = data.get("dataset") or template.default_dataset
        fitting = datasets_for(template)
        if name not in DEMO_DATASETS:
            raise ValidationError({"data": [f"Unknown dataset {name!r}; use one of {', '.join(fitting)}."]})
        if name not in fitting:
            raise ValidationError(
                {"data": [f"The dataset {name!r} does not fit the {template.name} template; use one of "
                          f"{', '.join(fitting)}."]}
            )  # fmt: skip
        return {"dataset": name}, None
    if "dataset" in data:
        raise ValidationError({"data": ["Give either dataset or training_set, not both."]})
    raw_id = data.get("training_set")
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or not str(raw_id).isdigit():
        raise ValidationError({"data": ["training_set is the id of a training set."]})
    training_set = restrict(actor, "view", TrainingSet.objects.all()).filter(pk=int(raw_id)).first()
    if training_set is None:
        raise ValidationError({"data": [f"No training set {raw_id} is visible to you."]})
    label = data.get("label")
    if not isinstance(label, str) or label not in training_set.columns:
        raise ValidationError(
            {"data": [f"label must be one of the training set's columns: {', '.join(training_set.columns)}."]}
        )
    keys = _join_keys(training_set)
    default = [c for c in training_set.columns if c != label and c not in NON_FEATURE_COLUMNS and c not in keys]
    features = data.get("features", default)
    if (
        not isinstance(features, list)
        or not features
        or len(features) > MAX_FEATURES
        or not all(isinstance(f, str) for f in features)
    ):
        raise ValidationError({"data": ["features is a non-empty list of column names."]})
    missing = [f for f in features if f not in training_set.columns]
    if missing or label in features:
        raise ValidationError(
            {"data": [f"Feature columns not in the training set (or equal to the label): {missing or [label]}."]}
        )
    return {"training_set": training_set.pk, "label": label, "features": features}, training_set


def _join_keys(training_set) -> set[str]:
    names = [v.get("name") for v in (training_set.lineage or {}).get("views", [])]
    keys: set[str] = set()
    for view in FeatureView.objects.filter(name__in=names).select_related("entity"):
        keys.update(view.entity.key_names)
    return keys


def load_arrays(job) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(X, y, label) for the engine; (None, None, name) means the engine's own demo dataset."""
    spec = job.data or {}
    if "training_set" not in spec:
        return None, None, spec.get("dataset") or ""
    if job.training_set is None:
        raise ValidationError({"data": ["The job's training set no longer exists."]})
    table = training_set_load(job.training_set, actor=job.owner)
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in [*spec["features"], spec["label"]]}
    try:
        X = np.column_stack([np.asarray(columns[f], dtype=np.float32) for f in spec["features"]])
    except (TypeError, ValueError) as exc:
        raise ValidationError({"data": [f"Feature columns must be numeric: {exc}"]}) from None
    y = np.asarray(columns[spec["label"]])
    if y.dtype == object:
        y = y.astype(str)
    return X, y, f"training-set:{job.training_set.name}"
