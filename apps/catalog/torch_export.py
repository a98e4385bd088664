"""Register a model version straight from a torch module (scripts, seed data, the training worker).

Export to ONNX through the dynamo exporter with a dynamic batch dimension, check ONNX Runtime
against torch on several batch sizes, save the weights as safetensors (never a pickle), upload.
"""

from __future__ import annotations

import copy
import io
import logging
import platform
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError

from apps.catalog import services
from apps.catalog.models import ModelVersion, RegisteredModel
from apps.core.permissions import visible_one

PARITY_BATCH_SIZES = (1, 3, 7)
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


class ParityError(ValidationError):
    """ONNX Runtime disagrees with torch beyond the tolerance."""


def export_onnx(module, example_input, *, input_name: str = "input", output_name: str = "output") -> bytes:
    """ONNX bytes of `module` with a dynamic batch axis (dimension 0), through the dynamo exporter."""
    import torch

    model = copy.deepcopy(module).to("cpu").eval()
    example = torch.as_tensor(np.asarray(example_input), dtype=torch.float32)
    if example.ndim < 2 or example.shape[0] < 1:
        raise ValidationError({"example_input": ["Give a non-empty batch: shape (batch, features...)."]})
    trace = example[:2] if example.shape[0] >= 2 else example.repeat(2, *([1] * (example.ndim - 1)))
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        model,
        (trace,),
        dynamo=True,
        input_names=[input_name],
        output_names=[output_name],
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    return program.model_proto.SerializeToString()


def parity_check(module, onnx_bytes: bytes, example_input, *, tolerance: float = 1e-4) -> float:
    """Max |onnx - torch| over several batch sizes; raises ParityError beyond `tolerance`."""
    import onnxruntime as ort
    import torch

    model = copy.deepcopy(module).to("cpu").eval()
    example = np.asarray(example_input, dtype=np.float32)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    worst = 0.0
    for size in PARITY_BATCH_SIZES:
        batch = np.resize(example, (size, *example.shape[1:])).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(batch)).numpy()
        got = session.run(None, {input_name: batch})[0]
        if got.shape != expected.shape:
            raise ParityError({"artifact": [f"ONNX output shape {got.shape} differs from torch {expected.shape}."]})
        worst = max(worst, float(np.max(np.abs(got - expected))) if got.size else 0.0)
    if worst > tolerance:
        raise ParityError(
            {"artifact": [f"ONNX parity check failed: max |onnx - torch| = {worst:.3g} > {tolerance:g}."]}
        )
    return worst


def state_dict_bytes(module) -> bytes:
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    return save(tensors, metadata={"format": "pt"})


def package_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


def version_register_from_torch(
    *,
    model_name: str,
    module,
    example_input,
    actor,
    metrics: dict | None = None,
    lineage: dict | None = None,
    state_dict: bool = True,
    tolerance: float = 1e-4,
    description: str = "",
    tags: list[str] | None = None,
    create: bool = True,
    model_description: str = "",
    team=None,
) -> ModelVersion:
    """Export, parity-check and register `module` as the next version of `model_name`.

    Creates the registered model when it does not exist and `create` is true (the actor then
    needs the role right to add models); otherwise the actor needs change on it.
    """
    existing = RegisteredModel.objects.filter(name=model_name).first()
    if existing is None:
        if not create:
            raise ValidationError({"model_name": [f"No model called {model_name!r}."]})
        model = services.model_create(actor=actor, name=model_name, description=model_description, team=team)
    else:
        model = visible_one(actor, RegisteredModel.objects.all(), pk=existing.pk)
    onnx_bytes = export_onnx(module, example_input)
    max_diff = parity_check(module, onnx_bytes, example_input, tolerance=tolerance)
    full_lineage: dict[str, Any] = {"package_versions": package_versions(), **(lineage or {})}
    weights = state_dict_bytes(module) if state_dict else None
    logging.getLogger(__name__).info("%s: ONNX parity max abs diff %.3g", model_name, max_diff)
    return services.version_register(
        model=model,
        actor=actor,
        artifact=io.BytesIO(onnx_bytes),
        artifact_size=len(onnx_bytes),
        state_dict=io.BytesIO(weights) if weights is not None else None,
        state_dict_size=len(weights) if weights is not None else None,
        description=description,
        tags=tags,
        metrics=metrics,
        lineage=full_lineage,
        framework="pytorch",
    )
