"""Serving fixtures: real ONNX models (an MLP with 30 inputs, 64 hidden units and 2 outputs, as the
benchmark serves), registered versions, and endpoints made as rows (the endpoint services are
tested on their own in test_endpoints_*.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from apps.catalog import services as catalog
from apps.catalog.models import ModelVersion, RegisteredModel
from apps.catalog.torch_export import onnx_bytes_of
from apps.core.permissions import grant_owner
from apps.serving.models import Endpoint, Route

FEATURES = 30


def mlp(seed: int, features: int = FEATURES, hidden: int = 64, outputs: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, outputs)
    ).eval()


def onnx_of(module: torch.nn.Module, features: int = FEATURES) -> bytes:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        example = np.random.default_rng(0).normal(size=(4, features)).astype(np.float32)
        return onnx_bytes_of(module, example)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mlp_onnx() -> dict[int, bytes]:
    """ONNX bytes of two different MLPs (seed 0 and seed 1): two versions that answer differently."""
    return {seed: onnx_of(mlp(seed)) for seed in (0, 1)}


@pytest.fixture(autouse=True)
def _serving_quiet():
    """No background log writer or shadow worker in tests (they call flush/drain themselves), and
    no buffered entries or cached plans carried from one test into the next."""
    from apps.serving.inference import cache, logbook, shadow

    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    logbook.discard()
    yield
    shadow.drain()
    logbook.discard()
    cache.STATE.reset()


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def vault_storage(settings, tmp_path):
    settings.VAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "vault"), "file_permissions_mode": 0o600},
    }
    return tmp_path / "vault"


def register(model: RegisteredModel, actor, data: bytes, **kwargs) -> ModelVersion:
    return catalog.version_register(
        model=model, actor=actor, artifact=io.BytesIO(data), artifact_size=len(data), **kwargs
    )


@pytest.fixture
def scorer(owner, mlp_onnx) -> RegisteredModel:
    """Model `fraud-score` with v1 (seed 0) and v2 (seed 1); alias `staging` -> v1."""
    model = catalog.model_create(actor=owner, name="fraud-score", description="Scores card payments")
    v1 = register(model, owner, mlp_onnx[0], metrics={"val_auc": 0.91})
    register(model, owner, mlp_onnx[1], metrics={"val_auc": 0.92})
    catalog.alias_move(model=model, alias="staging", version=v1, actor=owner)
    model.refresh_from_db()
    return model


def version_of(model: RegisteredModel, number: int) -> ModelVersion:
    return ModelVersion.objects.get(model=model, version=number)


def make_endpoint(owner, name: str, routes: list[dict], **fields) -> Endpoint:
    """An endpoint as rows: `routes` like {"name": "main", "model": m, "version": v or None,
    "alias": "" or "staging", "weight": 100, "mode": "live"}."""
    endpoint = Endpoint.objects.create(owner=owner, name=name, **fields)
    grant_owner(endpoint)
    for position, spec in enumerate(routes):
        Route.objects.create(endpoint=endpoint, position=position, **{"weight": 100, "mode": "live", **spec})
    return endpoint


@pytest.fixture
def endpoint(owner, scorer) -> Endpoint:
    """`fraud` with one live route `main` following `fraud-score@staging` (v1)."""
    return make_endpoint(owner, "fraud", [{"name": "main", "model": scorer, "alias": "staging"}])


def rows(n: int, seed: int = 0) -> list[list[float]]:
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32).round(4).tolist()
