"""Validation of uploaded artifacts: ONNX (checker + ONNX Runtime) and safetensors (header only).

Nothing uploaded is ever unpickled: ONNX is protobuf, safetensors is a JSON header plus raw bytes,
and both are checked without executing anything from the file.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from django.core.exceptions import ValidationError

from apps.catalog.models import FRAMEWORKS

SAFETENSORS_DTYPES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
MAX_SAFETENSORS_HEADER = 100 << 20
PRODUCER_FRAMEWORKS = {
    "pytorch": "pytorch", "skl2onnx": "sklearn", "tf2onnx": "tensorflow", "keras2onnx": "keras",
    "onnxmltools": "other", "onnx.compose": "onnx", "": "onnx",
}  # fmt: skip


@dataclass
class OnnxInfo:
    signature: dict
    opset: int | None
    producer: str
    framework: str


@contextmanager
def local_path(upload: BinaryIO) -> Iterator[str]:
    """A filesystem path holding the upload's bytes: the upload's own temp file when it has one."""
    getter = getattr(upload, "temporary_file_path", None)
    if getter is not None:
        upload.seek(0)
        yield getter()
        return
    upload.seek(0)
    fd, path = tempfile.mkstemp(suffix=".upload")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := upload.read(1 << 20):
                out.write(chunk)
        yield path
    finally:
        os.unlink(path)
        upload.seek(0)


def _dims(type_proto) -> list:
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]


def _dtype(type_proto) -> str:
    import onnx

    kind = type_proto.WhichOneof("value")
    if kind != "tensor_type":
        return kind or "unknown"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(type_proto.tensor_type.elem_type).name
    except (KeyError, ValueError, TypeError):
        return onnx.TensorProto.DataType.Name(type_proto.tensor_type.elem_type).lower()


def _has_external_data(proto) -> bool:
    import onnx

    for graph in [proto.graph, *(f for f in getattr(proto, "functions", []))]:
        for tensor in getattr(graph, "initializer", []):
            if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
                return True
    return False


def inspect_onnx(path: str, *, framework: str = "") -> OnnxInfo:
    """Run the ONNX checker and load the model in ONNX Runtime; return its signature.

    Raises ValidationError({"artifact": ...}) saying what is wrong and what to do.
    """
    import onnx
    import onnxruntime as ort
    from google.protobuf.message import DecodeError

    def invalid(message: str) -> ValidationError:
        return ValidationError({"artifact": [message]})

    try:
        proto = onnx.load(path, load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError, UnicodeDecodeError) as exc:
        raise invalid(f"This is not an ONNX model (protobuf decode failed: {str(exc)[:200]}).") from None
    if not proto.graph.node and not proto.graph.output:
        raise invalid("This file parsed as protobuf but holds no ONNX graph; upload the exported .onnx file.")
    if _has_external_data(proto):
        raise invalid(
            "The model keeps tensors in external data files, which cannot be uploaded; save it with "
            "onnx.save(model, path, save_as_external_data=False) so every weight is inside the file."
        )
    try:
        onnx.checker.check_model(path)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise invalid(f"The ONNX checker rejected the model: {str(exc).splitlines()[0][:300]}") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for every load failure
        raise invalid(f"ONNX Runtime cannot load the model: {str(exc).splitlines()[0][:300]}") from None
    initializers = {t.name for t in proto.graph.initializer}
    graph_inputs = {i.name: i for i in proto.graph.input if i.name not in initializers}
    graph_outputs = {o.name: o for o in proto.graph.output}

    def describe(meta, graph_map) -> dict:
        entry = graph_map.get(meta.name)
        if entry is not None:
            return {"name": meta.name, "dtype": _dtype(entry.type), "shape": _dims(entry.type)}
        return {"name": meta.name, "dtype": meta.type, "shape": list(meta.shape or [])}

    signature = {
        "inputs": [describe(m, graph_inputs) for m in session.get_inputs()],
        "outputs": [describe(m, graph_outputs) for m in session.get_outputs()],
    }
    opset = next((imp.version for imp in proto.opset_import if imp.domain in ("", "ai.onnx")), None)
    producer = f"{proto.producer_name} {proto.producer_version}".strip()[:120]
    if framework and framework not in FRAMEWORKS:
        raise ValidationError({"framework": [f"Choose one of: {', '.join(FRAMEWORKS)}."]})
    detected = PRODUCER_FRAMEWORKS.get(proto.producer_name.lower(), "other")
    return OnnxInfo(signature=signature, opset=opset, producer=producer, framework=framework or detected)


def inspect_safetensors(upload: BinaryIO, size: int) -> dict:
    """Check a safetensors file from its header and size alone; return a summary of its tensors."""

    def invalid(message: str) -> ValidationError:
        return ValidationError({"state_dict": [message]})

    upload.seek(0)
    head = upload.read(8)
    if len(head) != 8:
        raise invalid("The state dict is too short to be a safetensors file.")
    (header_len,) = struct.unpack("<Q", head)
    if header_len > MAX_SAFETENSORS_HEADER or header_len + 8 > size:
        raise invalid("The state dict is not a safetensors file (implausible header length). Pickles are refused.")
    try:
        header = json.loads(upload.read(header_len))
    except (ValueError, UnicodeDecodeError):
        raise invalid("The state dict header is not JSON: it is not a safetensors file.") from None
    finally:
        upload.seek(0)
    if not isinstance(header, dict):
        raise invalid("The safetensors header must be a JSON object.")
    header.pop("__metadata__", None)
    spans, params = [], 0
    for name, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            count = 1
            for dim in shape:
                if not isinstance(dim, int) or dim < 0:
                    raise ValueError
                count *= dim
        except (KeyError, TypeError, ValueError):
            raise invalid(f"Tensor {name[:80]!r} has a malformed safetensors entry.") from None
        if dtype not in SAFETENSORS_DTYPES:
            raise invalid(f"Tensor {name[:80]!r} has unknown dtype {str(dtype)[:20]!r}.")
        if not (isinstance(start, int) and isinstance(end, int)) or end - start != count * SAFETENSORS_DTYPES[dtype]:
            raise invalid(f"Tensor {name[:80]!r}: its byte range does not match its dtype and shape.")
        spans.append((start, end))
        params += count
    spans.sort()
    position = 0
    for start, end in spans:
        if start != position:
            raise invalid("The safetensors tensors overlap or leave gaps; the file is corrupt.")
        position = end
    if position != size - 8 - header_len:
        raise invalid("The safetensors data section does not match the file size; the file is truncated or padded.")
    return {"tensors": len(header), "parameters": params}
