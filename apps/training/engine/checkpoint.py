"""Pickle-free checkpoint format.

A checkpoint is a single safetensors blob:

* tensors: ``model.<key>`` (current weights of the inference model, i.e. core
  plus normalisation buffers), ``best.<key>`` (weights of the best epoch so far)
  and ``state.<n>`` (optimizer/scheduler tensors referenced from the header);
* metadata ``format`` = ``"mlops-trainer-checkpoint"`` and ``header`` = a JSON
  document with epoch, step, template, params, seed, data fingerprint,
  optimizer/scheduler state dicts, early-stopping state, epoch history and the
  RNG scheme.

Nested state dicts are stored as JSON where tensors are replaced by
``{"__tensor__": "state.<n>"}``; tuples, non-string dict keys and non-finite
floats get similar tagged forms so the round trip is exact. Loading never
executes code: it is ``json.loads`` plus ``safetensors.torch.load``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .header import FORMAT, CheckpointError, read_safetensors_metadata  # noqa: F401 (re-exported)
from .models import InferenceModel
from .templates import get_template

VERSION = 1


def encode_checkpoint(
    header: Mapping[str, Any],
    model_state: Mapping[str, torch.Tensor],
    best_state: Mapping[str, torch.Tensor] | None = None,
    states: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialize weights plus arbitrary state dicts (optimizer, scheduler...)."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, state in (("model.", model_state), ("best.", best_state or {})):
        for key, value in state.items():
            tensors[prefix + key] = _plain(value)
    # Header values go through the same tagging (e.g. a NaN validation loss in the history).
    doc = {key: _encode(value, tensors) for key, value in header.items()}
    doc["format"], doc["version"] = FORMAT, VERSION
    doc["states"] = {name: _encode(value, tensors) for name, value in (states or {}).items()}
    metadata = {"format": FORMAT, "header": json.dumps(doc, allow_nan=False, sort_keys=True)}
    return st_save(tensors, metadata=metadata)


def decode_checkpoint(
    data: bytes,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """Inverse of `encode_checkpoint`: ``(header, model_state, best_state, states)``."""
    header = read_header(data)
    try:
        tensors = st_load(bytes(data))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"invalid safetensors payload: {exc}") from exc
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    states = {name: _decode(value, tensors) for name, value in header.pop("states", {}).items()}
    return header, model, best, states


def read_header(data: bytes) -> dict[str, Any]:
    """Parse only the JSON header (cheap; no tensor data is touched)."""
    metadata = read_safetensors_metadata(data)
    if metadata.get("format") != FORMAT or "header" not in metadata:
        raise CheckpointError("not an mlops trainer checkpoint")
    raw = json.loads(metadata["header"])
    states = raw.pop("states", {})
    header = _decode(raw, {})
    header["states"] = states  # decoded by decode_checkpoint, which has the tensors
    if header.get("version") != VERSION:
        raise CheckpointError(f"unsupported checkpoint version {header.get('version')!r}")
    return header


def _plain(t: torch.Tensor) -> torch.Tensor:
    # safetensors refuses shared/non-contiguous storage; a CPU copy is always safe.
    return t.detach().to("cpu", copy=True).contiguous()


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"state.{len(tensors)}"  # any unique name will do
        tensors[key] = _plain(obj)
        return {"__tensor__": key}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(float(obj))}  # not np.float64(nan)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _encode(obj.item(), tensors)
    raise CheckpointError(f"cannot store {type(obj).__name__} in a checkpoint")


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        try:
            return tensors[obj["__tensor__"]]
        except KeyError:
            raise CheckpointError(f"missing tensor {obj['__tensor__']!r}") from None
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def load_model_from_checkpoint(data: bytes, *, best: bool = True) -> InferenceModel:
    """Rebuild the inference model (best or latest weights) from checkpoint bytes."""
    header, model_state, best_state, _ = decode_checkpoint(data)
    state = best_state if best and best_state else model_state
    return build_inference_model(
        header["template"], header["params"], tuple(header["input_shape"]), header["n_outputs"], state
    )


def build_inference_model(
    template_name: str,
    params: Mapping[str, Any],
    input_shape: tuple[int, ...],
    n_outputs: int,
    state: Mapping[str, torch.Tensor],
) -> InferenceModel:
    """Recreate an InferenceModel from its state dict (CPU, eval mode)."""
    core = get_template(template_name).build_model(params, input_shape, n_outputs)
    model = InferenceModel(core, state["x_mean"], state["x_std"], state.get("y_mean"), state.get("y_std"))
    model.load_state_dict(dict(state))
    return model.eval()
