"""Catalog fixtures: a real ONNX model exported from a torch module, once per session."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from apps.catalog import services
from apps.catalog.torch_export import export_onnx, state_dict_bytes


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
        return export_onnx(torch_module, example_input)
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
