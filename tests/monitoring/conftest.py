"""Monitoring fixtures: a tabular ONNX model (30 features, as serving's tests use) whose version
names scikit-learn's breast-cancer data as its training data, an endpoint on it, and logged
traffic written as rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from apps.catalog import services as catalog
from apps.serving.models import PredictionLog
from tests.serving.conftest import _serving_quiet, fast_passwords, make_endpoint, mlp_onnx, register, vault_storage

__all__ = ["_serving_quiet", "fast_passwords", "mlp_onnx", "vault_storage"]


@pytest.fixture
def cancer_model(owner, mlp_onnx):
    """`cancer-score` v1: trained (as its lineage says) on scikit-learn's breast-cancer data."""
    model = catalog.model_create(actor=owner, name="cancer-score", description="")
    version = register(model, owner, mlp_onnx[0], metrics={"accuracy": 0.95, "roc_auc": 0.97},
                       lineage={"training_set": "sklearn:breast-cancer"})  # fmt: skip
    return version


@pytest.fixture
def cancer_endpoint(owner, cancer_model):
    return make_endpoint(owner, "cancer", [{"name": "main", "model": cancer_model.model, "version": cancer_model}])


def cancer_rows(n: int, seed: int, shift: dict[int, float] | None = None) -> np.ndarray:
    """`n` rows resampled from the breast-cancer data; `shift`: column -> factor applied."""
    from apps.training.engine.datasets import load_dataset

    X = load_dataset("breast_cancer").X.astype(np.float64)
    picked = X[np.random.default_rng(seed).integers(0, len(X), n)]
    for column, factor in (shift or {}).items():
        picked[:, column] *= factor
    return picked


def log_traffic(endpoint, version, X: np.ndarray, *, route: str = "main", per_call: int = 10, minutes_ago: int = 5):
    """Logged live predictions of `X` as the logbook writes them (inputs as sent, outputs as answered)."""
    from apps.serving.inference.runtime import session_for

    model = session_for(version)
    at = timezone.now() - dt.timedelta(minutes=minutes_ago)
    logs = []
    for i, start in enumerate(range(0, len(X), per_call)):
        batch = X[start : start + per_call]
        outputs = model.run({model.input_names[0]: batch.astype(np.float32)})
        logs.append(PredictionLog(
            endpoint=endpoint, route=route, mode="live", version=version, prediction_id=f"p-{i}-{start}",
            rows=len(batch), inputs=batch.round(6).tolist(), outputs={k: v.tolist() for k, v in outputs.items()},
            latency_ms=1.0, status=200, created_at=at,
        ))  # fmt: skip
    PredictionLog.objects.bulk_create(logs)
    return logs
