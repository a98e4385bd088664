"""Run configuration, result and error types shared by the loop, DDP, CLI."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .resources import ResourceUsage

ENGINE_VERSION = "1.0"

Status = Literal["succeeded", "cancelled", "timeout"]


class InvalidParams(ValueError):
    """Hyperparameters failed validation; `errors` maps field -> messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items())
        super().__init__(f"invalid params: {detail}")


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class MaxRuntimeExceeded(RuntimeError):
    """Raised instead of returning status 'timeout' when `raise_on_timeout` is set.

    The partial result (best weights so far) is attached as `result`.
    """

    def __init__(self, limit_s: float, result: TrainResult | None = None) -> None:
        self.limit_s = limit_s
        self.result = result
        super().__init__(f"training exceeded max_runtime_s={limit_s}")


@dataclass
class TrainConfig:
    template: str
    params: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"  # 'cpu' | 'cuda' | 'cuda:N' | 'auto'
    seed: int | None = None  # None: 0, or the checkpoint's seed when resuming
    max_runtime_s: float | None = None  # wall clock of this session, checked between steps
    resume_from: bytes | None = None  # checkpoint bytes from `on_checkpoint`
    bf16: bool = False  # bf16 autocast; ignored unless the device is CUDA
    X: np.ndarray | None = None  # features; None -> the template's demo dataset
    y: np.ndarray | None = None
    dataset: str | None = None  # demo dataset name, or a label for caller arrays
    raise_on_timeout: bool = False
    deterministic: bool = True  # deterministic kernels (CUDA) during the run
    # CPU intra-op threads for the run (None: torch's default). Small models train
    # faster single-threaded, especially on shared hosts where OpenMP spin-waits.
    num_threads: int | None = None


@dataclass
class TrainResult:
    status: Status
    template: str
    task: str
    params: dict[str, Any]
    seed: int
    device: str
    bf16: bool  # whether bf16 autocast was actually used
    world_size: int
    epochs_completed: int
    best_epoch: int | None
    stopped_early: bool
    # Validation metrics of the returned weights (the best epoch), plus train_loss.
    metrics: dict[str, float]
    # {"epochs": one record per completed epoch (incl. those before a resume),
    #  "steps": one record per optimiser step of this session}
    history: dict[str, list[dict[str, Any]]]
    model: nn.Module | None  # InferenceModel on CPU in eval mode: raw features in
    example_input: np.ndarray  # raw validation inputs, for export/parity checks
    dataset: dict[str, Any]
    resources: ResourceUsage
    versions: dict[str, str]
    resumed_from_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no tensors, no module)."""
        return {
            "status": self.status,
            "template": self.template,
            "task": self.task,
            "params": self.params,
            "seed": self.seed,
            "device": self.device,
            "bf16": self.bf16,
            "world_size": self.world_size,
            "epochs_completed": self.epochs_completed,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "resumed_from_epoch": self.resumed_from_epoch,
            "metrics": self.metrics,
            "history": {"epochs": self.history.get("epochs", [])},
            "dataset": self.dataset,
            "example_input_shape": list(self.example_input.shape),
            "resources": self.resources.to_dict(),
            "versions": self.versions,
        }


def package_versions() -> dict[str, str]:
    return {
        "engine": ENGINE_VERSION,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": str(torch.version.cuda) if torch.version.cuda else "none",
    }
