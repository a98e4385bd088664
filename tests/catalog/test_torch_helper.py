"""version_register_from_torch: dynamo export, dynamic batch, parity, safetensors, upload."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from django.core.exceptions import ValidationError
from safetensors.torch import load as st_load

from apps.catalog.torch_export import ParityError, parity_check, version_register_from_torch
from apps.core import vault
from apps.core.models import VaultBlob
from tests.catalog.conftest import tiny_module

pytestmark = pytest.mark.django_db


def test_register_from_torch_round_trip(owner, example_input, torch_module):
    version = version_register_from_torch(
        model_name="iris-mlp", module=torch_module, example_input=example_input, actor=owner,
        metrics={"accuracy": 0.97}, lineage={"run_id": "5", "seed": 0},
    )  # fmt: skip
    assert version.version == 1 and version.framework == "pytorch"
    assert version.model.owner == owner and version.metrics == {"accuracy": 0.97}
    assert version.package_versions["torch"] == torch.__version__ and version.run_id == "5"
    session = ort.InferenceSession(vault.blob_read(version.artifact), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"  # dynamic batch dimension
    batch = np.random.default_rng(1).normal(size=(11, 6)).astype(np.float32)
    with torch.no_grad():
        expected = torch_module(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(session.run(None, {"input": batch})[0], expected, atol=1e-5)
    weights = st_load(vault.blob_read(version.state_dict))
    assert set(weights) == set(torch_module.state_dict())
    second = version_register_from_torch(
        model_name="iris-mlp", module=torch_module, example_input=example_input, actor=owner, state_dict=False
    )
    assert second.version == 2 and second.state_dict is None


def test_parity_failure_registers_nothing(owner, example_input, onnx_bytes):
    other = tiny_module(seed=99)
    with pytest.raises(ParityError, match="parity"):
        parity_check(other, onnx_bytes, example_input)
    assert VaultBlob.objects.count() == 0


def test_bad_example_and_permissions(owner, stranger, example_input, torch_module):
    with pytest.raises(ValidationError):
        version_register_from_torch(model_name="x-1", module=torch_module, example_input=np.zeros(3), actor=owner)
    from apps.catalog import services

    services.model_create(actor=owner, name="owned")
    from django.http import Http404

    with pytest.raises(Http404):
        version_register_from_torch(
            model_name="owned", module=torch_module, example_input=example_input, actor=stranger
        )
