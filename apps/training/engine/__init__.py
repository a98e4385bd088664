"""Trainer engine: plain PyTorch + NumPy, no Django.

Public API (imported lazily so that ``validate_params``/``list_templates``
work without loading torch):

* ``train(config, callbacks) -> TrainResult`` and ``train_distributed(config,
  world_size, callbacks)`` for DDP;
* ``TrainConfig``, ``TrainResult``, ``Callbacks``/``TrainingCallbacks``;
* ``validate_params``, ``list_templates``, ``get_template``, ``TEMPLATES``;
* ``export_onnx``/``export_result_onnx`` (parity-checked), ``export_safetensors``;
* errors: ``InvalidParams``, ``DataError``, ``CheckpointError``,
  ``MaxRuntimeExceeded``, ``TrainingDiverged``, ``ParityError``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ParamSpec": "schema",
    "TEMPLATES": "templates",
    "Template": "templates",
    "UnknownTemplate": "templates",
    "get_template": "templates",
    "list_templates": "templates",
    "validate_params": "templates",
    "Callbacks": "callbacks",
    "CallbackList": "callbacks",
    "ProgressPrinter": "callbacks",
    "TrainingCallbacks": "callbacks",
    "InvalidParams": "config",
    "MaxRuntimeExceeded": "config",
    "TrainConfig": "config",
    "TrainResult": "config",
    "TrainingDiverged": "config",
    "DataError": "data",
    "CheckpointError": "checkpoint",
    "decode_checkpoint": "checkpoint",
    "read_header": "checkpoint",
    "ResourceUsage": "resources",
    "load_model_from_checkpoint": "checkpoint",
    "train": "loop",
    "DistributedTrainingError": "distributed",
    "train_distributed": "distributed",
    "OnnxExport": "export",
    "ParityError": "export",
    "export_onnx": "export",
    "export_result_onnx": "export",
    "export_safetensors": "export",
    "load_safetensors_model": "export",
    "model_metadata": "export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
