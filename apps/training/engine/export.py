"""ONNX export with an onnxruntime parity gate, and safetensors weight export."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from .checkpoint import CheckpointError, build_inference_model, read_safetensors_metadata
from .config import TrainResult
from .models import InferenceModel

DEFAULT_TOLERANCE = 1e-4
# float32 cannot hold 1e-4 absolute precision for large outputs (a regression
# target of ~300 has an ulp of 3e-5), so the bound grows by rtol * max|output|
# as numpy.allclose does. 1e-6 is ~8 float32 ulps.
DEFAULT_RTOL = 1e-6
TORCHSCRIPT_OPSET = 17
EXPORT_BATCH = 2  # traced batch size; parity runs on other sizes to prove it is dynamic
MODEL_FORMAT = "mlops-trainer-model"

ExporterChoice = Literal["auto", "dynamo", "torchscript"]


class ParityError(RuntimeError):
    """ONNX Runtime output differs from PyTorch by more than the tolerance."""

    def __init__(self, max_abs_diff: float, threshold: float, batch_size: int) -> None:
        self.max_abs_diff = max_abs_diff
        self.threshold = threshold
        self.batch_size = batch_size
        super().__init__(
            f"ONNX parity check failed: max |onnx - torch| = {max_abs_diff:.3g} "
            f"> allowed {threshold:.3g} (batch size {batch_size})"
        )


@dataclass
class OnnxExport:
    onnx_bytes: bytes
    exporter: str  # "dynamo" or "torchscript": the one that produced onnx_bytes
    parity_max_abs_diff: float
    parity_threshold: float  # tolerance + rtol * max|torch output|
    tolerance: float
    rtol: float
    input_names: list[str]
    output_names: list[str]
    opset: int
    batch_sizes_checked: list[int] = field(default_factory=list)
    fallback_reason: str | None = None  # why dynamo was not used, if it was not

    def summary(self) -> dict[str, Any]:
        return {
            "exporter": self.exporter,
            "fallback_reason": self.fallback_reason,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "parity_threshold": self.parity_threshold,
            "tolerance": self.tolerance,
            "rtol": self.rtol,
            "input_names": self.input_names,
            "output_names": self.output_names,
            "opset": self.opset,
            "batch_sizes_checked": self.batch_sizes_checked,
            "size_bytes": len(self.onnx_bytes),
        }


def dynamo_available() -> bool:
    """The dynamo exporter needs onnxscript, which is optional on workers."""
    return importlib.util.find_spec("onnxscript") is not None


def output_name_for(model: nn.Module) -> str:
    if isinstance(model, InferenceModel):
        return "prediction" if model.rescale_output else "logits"
    return "output"


def export_result_onnx(result: TrainResult, **kwargs: Any) -> OnnxExport:
    """Export a TrainResult's model, checking parity on its validation inputs."""
    if result.model is None:
        raise ValueError("result has no model to export")
    return export_onnx(result.model, result.example_input, **kwargs)


def export_onnx(
    model: nn.Module,
    example_input: np.ndarray,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    rtol: float = DEFAULT_RTOL,
    exporter: ExporterChoice = "auto",
    opset: int | None = None,
    input_name: str = "input",
    output_name: str | None = None,
) -> OnnxExport:
    """Export `model` (raw inputs -> outputs) to ONNX with a dynamic batch axis.

    Runs `onnx.checker`, then compares onnxruntime against PyTorch on several
    batch sizes that differ from the traced one; raises ParityError when the
    max absolute difference exceeds ``tolerance + rtol * max|torch output|``.
    """
    import onnx

    model = copy.deepcopy(model).to("cpu").eval()  # never mutate the caller's module
    example = np.ascontiguousarray(example_input, dtype=np.float32)
    if example.ndim < 2 or len(example) == 0:
        raise ValueError("example_input must be a non-empty batch")
    out_name = output_name or output_name_for(model)
    trace = torch.from_numpy(_rows(example, EXPORT_BATCH))

    fallback_reason = None
    used = exporter
    if exporter == "auto":
        used = "dynamo" if dynamo_available() else "torchscript"
        if used == "torchscript":
            fallback_reason = "onnxscript is not installed"
    onnx_bytes = b""
    if used == "dynamo":
        try:
            onnx_bytes = _export_dynamo(model, trace, input_name, out_name, opset)
        except Exception as exc:  # any exporter failure: try the legacy path
            if exporter == "dynamo":
                raise
            used, fallback_reason = "torchscript", f"dynamo export failed: {exc}"[:500]
    if used == "torchscript":
        onnx_bytes = _export_torchscript(model, trace, input_name, out_name, opset)

    proto = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(proto)
    max_diff, threshold, sizes = check_parity(model, onnx_bytes, example, tolerance, rtol)
    return OnnxExport(
        onnx_bytes=onnx_bytes,
        exporter=used,
        parity_max_abs_diff=max_diff,
        parity_threshold=threshold,
        tolerance=tolerance,
        rtol=rtol,
        input_names=[i.name for i in proto.graph.input],
        output_names=[o.name for o in proto.graph.output],
        opset=next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0),
        batch_sizes_checked=sizes,
        fallback_reason=fallback_reason,
    )


def _export_dynamo(
    model: nn.Module, trace: torch.Tensor, input_name: str, output_name: str, opset: int | None
) -> bytes:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter internals are chatty across versions
        program = torch.onnx.export(
            model,
            (trace,),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=[input_name],
            output_names=[output_name],
            opset_version=opset,
            verbose=False,
        )
    if program is None:  # pragma: no cover - only when f= is given
        raise RuntimeError("dynamo exporter returned no program")
    return program.model_proto.SerializeToString()


def _export_torchscript(
    model: nn.Module, trace: torch.Tensor, input_name: str, output_name: str, opset: int | None
) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices for the legacy exporter
        torch.onnx.export(
            model,
            (trace,),
            buffer,
            dynamo=False,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            opset_version=opset or TORCHSCRIPT_OPSET,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def check_parity(
    model: nn.Module,
    onnx_bytes: bytes,
    example: np.ndarray,
    tolerance: float = DEFAULT_TOLERANCE,
    rtol: float = DEFAULT_RTOL,
) -> tuple[float, float, list[int]]:
    """Max |onnxruntime - torch| over batch sizes 1, 3 and the full example.

    Returns ``(max_abs_diff, threshold, batch_sizes)``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    sizes = sorted({1, 3, max(len(example), 1)} - {EXPORT_BATCH})
    worst = threshold = 0.0
    for size in sizes:
        batch = _rows(example, size)
        with torch.no_grad():
            expected = model(torch.from_numpy(batch)).numpy()
        got = _run_onnx(session, input_name, batch)
        allowed = tolerance + rtol * float(np.max(np.abs(expected), initial=0.0))
        if got.shape != expected.shape:
            raise ParityError(float("inf"), allowed, size)
        diff = float(np.max(np.abs(got.astype(np.float64) - expected), initial=0.0))
        if not np.isfinite(diff) or diff > allowed:
            raise ParityError(diff, allowed, size)
        worst, threshold = max(worst, diff), max(threshold, allowed)
    return worst, threshold, sizes


def _run_onnx(session: Any, input_name: str, batch: np.ndarray) -> np.ndarray:
    return np.asarray(session.run(None, {input_name: batch})[0])


def _rows(example: np.ndarray, n: int) -> np.ndarray:
    """Exactly `n` rows, repeating the example if it is shorter."""
    reps = -(-n // len(example))
    return np.ascontiguousarray(np.concatenate([example] * reps)[:n])


def model_metadata(result: TrainResult) -> dict[str, Any]:
    """What a consumer needs to rebuild/interpret an exported model."""
    return {
        "template": result.template,
        "task": result.task,
        "params": result.params,
        "seed": result.seed,
        "input_shape": result.dataset.get("input_shape"),
        "n_outputs": result.dataset.get("n_outputs"),
        "classes": result.dataset.get("classes"),
        "metrics": result.metrics,
        "best_epoch": result.best_epoch,
        "versions": result.versions,
    }


def export_safetensors(model: nn.Module, metadata: Mapping[str, Any] | None = None) -> bytes:
    """State dict as safetensors bytes; `metadata` is stored as JSON in the header."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    header = json.dumps(dict(metadata or {}), sort_keys=True, default=str)
    return st_save(tensors, metadata={"format": MODEL_FORMAT, "header": header})


def load_safetensors_model(data: bytes) -> InferenceModel:
    """Inverse of `export_safetensors(result.model, model_metadata(result))`."""
    meta = read_safetensors_metadata(data)
    if meta.get("format") != MODEL_FORMAT:
        raise CheckpointError("not an mlops trainer model export")
    header = json.loads(meta["header"])
    return build_inference_model(
        header["template"],
        header["params"],
        tuple(header["input_shape"]),
        header["n_outputs"],
        st_load(bytes(data)),
    )
