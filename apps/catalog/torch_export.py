"""Register a model version straight from a torch module (scripts, seed data, notebooks).

The ONNX export and its parity check are the training engine's (`apps.training.engine.export`):
one exporter with a dynamic batch dimension, checked against ONNX Runtime on several batch sizes.
This module adds what the catalog needs around it: the weights as safetensors (never a pickle),
the package versions for lineage, and the upload through `services.version_register`.

It imports torch (through the engine), so only callers that have a module to export import it;
the web process never does.
"""

from __future__ import annotations

import io
import logging
import platform
from typing import Any

import numpy as np
from django.core.exceptions import ValidationError

from apps.catalog import services
from apps.catalog.models import ModelVersion, RegisteredModel
from apps.core.permissions import visible_one
from apps.training.engine.export import OnnxExport, ParityError, export_onnx

logger = logging.getLogger(__name__)
logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


def onnx_bytes_of(module, example_input, *, tolerance: float = 1e-4) -> bytes:
    """ONNX bytes of `module` (dynamic batch axis), parity-checked by the engine's exporter.

    Raises a field error: `example_input` when it is not a non-empty batch, `artifact` when ONNX
    Runtime disagrees with torch beyond `tolerance`.
    """
    return onnx_export_of(module, example_input, tolerance=tolerance).onnx_bytes


def onnx_export_of(module, example_input, *, tolerance: float = 1e-4) -> OnnxExport:
    """The engine's export of `module` with its parity check (`onnx_bytes_of` explains the errors)."""
    example = np.asarray(example_input, dtype=np.float32)
    if example.ndim < 2 or example.shape[0] < 1:
        raise ValidationError({"example_input": ["Give a non-empty batch: shape (batch, features...)."]})
    try:
        exported = export_onnx(module, example, tolerance=tolerance, output_name="output")
    except ParityError as exc:
        raise ValidationError({"artifact": [f"{exc}. The model was not registered."]}) from None
    logger.info("ONNX export (%s): parity max abs diff %.3g", exported.exporter, exported.parity_max_abs_diff)
    return exported


def state_dict_bytes(module) -> bytes:
    """The module's weights as safetensors bytes."""
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
    team: str | None = None,
) -> ModelVersion:
    """Export, parity-check and register `module` as the next version of `model_name`.

    Creates the registered model when it does not exist and `create` is true (the actor then
    needs the role right to add models; `team` is a team slug, as for `services.model_create`);
    otherwise the actor needs change on it. Raises `NotFound` for a model the actor cannot see.
    """
    model = RegisteredModel.objects.filter(name=model_name).first()
    if model is not None:
        model = visible_one(actor, RegisteredModel.objects.all(), pk=model.pk)
    elif not create:
        raise ValidationError({"model_name": [f"No model called {model_name!r}."]})
    exported = onnx_export_of(
        module, example_input, tolerance=tolerance
    )  # before creating: a failed export leaves nothing
    onnx_bytes = exported.onnx_bytes
    if model is None:
        model = services.model_create(actor=actor, name=model_name, description=model_description, team=team)
    full_lineage: dict[str, Any] = {"package_versions": package_versions(), **(lineage or {})}
    weights = state_dict_bytes(module) if state_dict else None
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
        onnx_parity=exported.summary(),
    )
