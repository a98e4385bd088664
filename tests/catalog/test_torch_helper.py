"""version_register_from_torch: the engine's export (dynamic batch, parity), safetensors, upload."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from django.core.exceptions import ValidationError
from safetensors.torch import load as st_load

from apps.catalog import torch_export
from apps.catalog.models import RegisteredModel
from apps.catalog.torch_export import version_register_from_torch
from apps.core import vault
from apps.core.errors import NotFound
from apps.core.models import VaultBlob
from apps.training.engine import export as engine_export

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


def test_helper_uses_the_engine_exporter():
    """One ONNX exporter and one ParityError in the portal: the training engine's."""
    assert torch_export.export_onnx is engine_export.export_onnx
    assert torch_export.ParityError is engine_export.ParityError
    assert not hasattr(torch_export, "parity_check")


class _NoisyModule(torch.nn.Module):
    """Adds fresh noise on every call: ONNX Runtime and torch cannot agree, so parity fails."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.linear(x) + torch.rand_like(self.linear(x))


def test_parity_failure_is_an_artifact_field_error_and_registers_nothing(owner, example_input):
    with pytest.raises(ValidationError) as caught:
        version_register_from_torch(model_name="noisy", module=_NoisyModule(), example_input=example_input, actor=owner)
    assert "parity" in caught.value.message_dict["artifact"][0]
    assert VaultBlob.objects.count() == 0 and not RegisteredModel.objects.filter(name="noisy").exists()


def test_bad_example_and_permissions(owner, stranger, example_input, torch_module):
    with pytest.raises(ValidationError) as caught:
        version_register_from_torch(model_name="x-1", module=torch_module, example_input=np.zeros(3), actor=owner)
    assert "example_input" in caught.value.message_dict
    from apps.catalog import services

    services.model_create(actor=owner, name="owned")
    with pytest.raises(NotFound):
        version_register_from_torch(
            model_name="owned", module=torch_module, example_input=example_input, actor=stranger
        )
