"""Reading a checkpoint's JSON header without torch (the portal's writer process has no torch)."""

from __future__ import annotations

import json
import struct
from typing import Any

FORMAT = "mlops-trainer-checkpoint"


class CheckpointError(ValueError):
    """Checkpoint bytes are malformed or do not match the run being resumed."""


def read_safetensors_metadata(data: bytes) -> dict[str, str]:
    """Read the ``__metadata__`` block of a safetensors blob held in memory."""
    if len(data) < 8:
        raise CheckpointError("truncated safetensors data")
    (size,) = struct.unpack("<Q", bytes(data[:8]))
    if size > len(data) - 8:
        raise CheckpointError("truncated safetensors header")
    try:
        doc = json.loads(bytes(data[8 : 8 + size]))
    except ValueError as exc:
        raise CheckpointError(f"invalid safetensors header: {exc}") from exc
    return dict(doc.get("__metadata__") or {})


def epoch_record(data: bytes, epoch: int) -> dict[str, Any]:
    """The checkpoint's history entry for `epoch` as stored ({} if absent).

    Non-finite floats come back as floats (they are stored tagged: JSON has no NaN).
    """
    metadata = read_safetensors_metadata(data)
    if metadata.get("format") != FORMAT or "header" not in metadata:
        raise CheckpointError("not an mlops trainer checkpoint")
    history = (json.loads(metadata["header"]).get("loop") or {}).get("history") or []
    record = next((h for h in reversed(history) if isinstance(h, dict) and h.get("epoch") == epoch), {})
    return {key: _untag(value) for key, value in record.items()}


def _untag(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__float__"}:
        return float(value["__float__"])
    return value
