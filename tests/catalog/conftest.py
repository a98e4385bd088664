"""Catalog fixtures: a real ONNX model exported from a torch module, once per session."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog import services
from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.catalog.torch_export import onnx_bytes_of, state_dict_bytes


def tiny_module(seed: int = 0, features: int = 6, classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(features, 16), torch.nn.ReLU(), torch.nn.Linear(16, classes)).eval()


@pytest.fixture(scope="session")
def example_input() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)


@pytest.fixture(scope="session")
def torch_module() -> torch.nn.Module:
    return tiny_module()


@pytest.fixture(scope="session")
def onnx_bytes(torch_module, example_input) -> bytes:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return onnx_bytes_of(torch_module, example_input)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def single_threaded_torch():
    """Tiny models on a shared machine: intra-op threads only add contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def weights_bytes(torch_module) -> bytes:
    return state_dict_bytes(torch_module)


@pytest.fixture
def registered(owner):
    return services.model_create(actor=owner, name="credit-risk", description="Scores loans", tags=["tabular"])


def register(model, actor, data: bytes, **kwargs):
    return services.version_register(
        model=model, actor=actor, artifact=io.BytesIO(data), artifact_size=len(data), **kwargs
    )


@pytest.fixture
def version(registered, owner, onnx_bytes, weights_bytes):
    return register(
        registered,
        owner,
        onnx_bytes,
        state_dict=io.BytesIO(weights_bytes),
        state_dict_size=len(weights_bytes),
        metrics={"auc": 0.91},
        lineage={"run_id": "42", "training_set": "loans-2024", "seed": 7},
    )


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Personas are created per test; the production hasher would dominate this suite's runtime."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def vault_storage(settings, tmp_path):
    """Each test gets its own vault folder, so 'nothing left behind' can be checked exactly."""
    settings.VAULT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "vault"), "file_permissions_mode": 0o600},
    }
    return tmp_path / "vault"


def add_versions(model, actor, artifact, count: int, *, alias_each: bool = True) -> list[ModelVersion]:
    """`count` more versions of `model` sharing one stored `artifact` blob (rows only, for list sizes),
    each with an alias `a<number>` unless `alias_each` is false."""
    start = model.latest_version
    versions = [
        ModelVersion.objects.create(
            model=model, version=start + i, artifact=artifact, created_by=actor, metrics={"auc": 0.5 + i / 1000}
        )
        for i in range(1, count + 1)
    ]
    if alias_each:
        Alias.objects.bulk_create(Alias(model=model, name=f"a{v.version}", version=v, moved_by=actor) for v in versions)
    RegisteredModel.objects.filter(pk=model.pk).update(latest_version=start + count)
    model.latest_version = start + count
    return versions


def queries_for(client, url: str, rows: int | None = None) -> int:
    """How many SQL queries one GET of `url` runs (it must answer 200; `rows` checks an API page's size)."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    if rows is not None:
        assert len(response.json()["results"]) == rows
    return len(captured.captured_queries)
