"""The training loop: AdamW, LR schedule, early stopping, checkpoints, resume."""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .callbacks import Callbacks, TrainingCallbacks, as_callbacks
from .checkpoint import CheckpointError, decode_checkpoint, encode_checkpoint
from .config import (
    InvalidParams,
    MaxRuntimeExceeded,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    package_versions,
)
from .data import PreparedData, make_loader, prepare_data
from .metrics import accuracy, f1_macro, regression_metrics
from .models import InferenceModel
from .resources import ResourceMeter
from .templates import Template, get_template

EXAMPLE_ROWS = 64
EVAL_BATCH = 4096


def train(config: TrainConfig, callbacks: TrainingCallbacks | None = None) -> TrainResult:
    """Train in this process. Returns a result for 'succeeded', 'cancelled' or
    'timeout'; raises InvalidParams, DataError, CheckpointError, TrainingDiverged
    (and MaxRuntimeExceeded when `config.raise_on_timeout`)."""
    return run_training(config, as_callbacks(callbacks), Runtime())


class Runtime:
    """Single-process hooks; `distributed.DDPRuntime` overrides them."""

    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def resolve_device(self, requested: str) -> torch.device:
        return resolve_device(requested)

    def wrap(self, core: nn.Module, device: torch.device) -> nn.Module:
        return core

    def loader(self, data: PreparedData, batch_size: int, seed: int, epoch: int):
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, self.rank))
        return make_loader(data.x_train, data.y_train, batch_size, generator=generator)

    def agree(self, stop: bool, timeout: bool, device: torch.device) -> tuple[bool, bool]:
        """All ranks must leave the loop at the same step (DDP would hang otherwise)."""
        return stop, timeout

    def mean(self, value: torch.Tensor) -> float:
        return float(value.item())

    def finish(self, device: torch.device) -> None:
        """Called once after the loop, before results are assembled."""


@dataclass
class LoopState:
    """Everything besides weights/optimizer needed to resume exactly."""

    epoch: int = 0
    step: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"unsupported device {requested!r} (use cpu, cuda or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {requested!r} (use cpu, cuda or auto)")
    return device


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """RNG seed for one epoch on one rank.

    Re-seeding every RNG at each epoch start makes the state at any epoch
    boundary a pure function of (seed, epoch, rank): a resumed run replays the
    exact shuffles and dropout masks without restoring per-rank RNG blobs.
    """
    digest = hashlib.sha256(f"{seed}:{epoch}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextmanager
def deterministic_mode(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the run only; restores global flags afterwards."""
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    # Only CUDA needs the global switch: the CPU kernels used here (linear, conv,
    # pooling, losses, AdamW) are deterministic for a fixed thread count, and the
    # switch costs seconds per process because it imports torch._inductor.
    if enabled and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read at cuBLAS init
        # warn_only: an op without a deterministic kernel should not fail a job.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        if enabled and device.type == "cuda":
            torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev[2], prev[3]


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (None: leave it alone)."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(previous)


def make_scheduler(optimizer: torch.optim.Optimizer, params: Mapping[str, Any]):
    """Per-epoch schedule; None when disabled."""
    epochs = params["epochs"]
    if params["scheduler"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if params["scheduler"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None


@torch.no_grad()
def evaluate(core: nn.Module, data: PreparedData, device: torch.device, use_bf16: bool) -> dict[str, float]:
    core.eval()
    outputs = []
    for start in range(0, len(data.x_val), EVAL_BATCH):
        xb = torch.from_numpy(data.x_val[start : start + EVAL_BATCH]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            outputs.append(core(xb).float())
    out = torch.cat(outputs)
    target = torch.from_numpy(data.y_val).to(device)
    if data.task == "classification":
        pred = out.argmax(dim=1).cpu().numpy()
        return {
            "val_loss": float(F.cross_entropy(out, target).item()),
            "val_acc": accuracy(data.y_val_raw, pred),
            "val_f1": f1_macro(data.y_val_raw, pred),
        }
    assert data.y_mean is not None and data.y_std is not None  # noqa: S101  type narrowing: regression data is always normalised
    pred = out.cpu().numpy() * data.y_std + data.y_mean
    return {
        "val_loss": float(F.mse_loss(out, target).item()),
        **regression_metrics(data.y_val_raw, pred),
    }


def _resolve_params(template: Template, config: TrainConfig, header: Mapping[str, Any] | None) -> dict[str, Any]:
    requested = config.params if (config.params or header is None) else header["params"]
    params, errors = template.validate(requested)
    if errors:
        raise InvalidParams(errors)
    if header is not None and params != header["params"]:
        raise CheckpointError("params differ from the checkpoint's; resume needs identical params")
    return params


def _improved(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


def run_training(config: TrainConfig, callbacks: Callbacks, runtime: Runtime) -> TrainResult:
    template = get_template(config.template)
    header = model_state = best_state = states = None
    if config.resume_from is not None:
        header, model_state, best_state, states = decode_checkpoint(config.resume_from)
        if header["template"] != template.name:
            raise CheckpointError(f"checkpoint is for template {header['template']!r}")
    params = _resolve_params(template, config, header)
    seed = int(config.seed if config.seed is not None else (header or {}).get("seed", 0))
    if header is not None and header["seed"] != seed:
        raise CheckpointError(f"seed {seed} differs from the checkpoint's {header['seed']}")
    device = runtime.resolve_device(config.device)
    use_bf16 = bool(config.bf16 and device.type == "cuda")

    with deterministic_mode(config.deterministic, device), cpu_threads(config.num_threads):
        seed_everything(seed)  # identical initial weights on every rank
        data = prepare_data(template, params, seed, config.X, config.y, config.dataset)
        if header is not None and header["data_fingerprint"] != data.fingerprint:
            raise CheckpointError("training data differs from the checkpoint's")
        model = data.inference_model(template.build_model(params, data.input_shape, data.n_outputs))
        model.to(device)
        optimizer = torch.optim.AdamW(model.core.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
        scheduler = make_scheduler(optimizer, params)
        state = LoopState()
        best: dict[str, torch.Tensor] | None = None
        if header is not None:
            assert model_state is not None and states is not None  # noqa: S101  type narrowing: a header comes with both states
            model.load_state_dict(model_state)
            optimizer.load_state_dict(states["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(states["scheduler"])
            state = LoopState(**header["loop"])
            best = best_state or None
        net = runtime.wrap(model.core, device)
        loss_fn = F.cross_entropy if template.task == "classification" else F.mse_loss
        meter = ResourceMeter(device)
        status = "succeeded"
        steps: list[dict[str, Any]] = []
        epochs = params["epochs"]
        session_epochs = 0
        resumed_from = state.epoch if header is not None else None

        epoch = state.epoch
        while not state.stopped_early and epoch < epochs and status == "succeeded":
            epoch += 1
            seed_everything(epoch_seed(seed, epoch, runtime.rank))
            loader = runtime.loader(data, params["batch_size"], seed, epoch)
            net.train()
            t0 = time.perf_counter()
            losses: list[float] = []
            lr = optimizer.param_groups[0]["lr"]
            for xb, yb in loader:
                stop = runtime.is_main and callbacks.should_stop()
                late = config.max_runtime_s is not None and meter.elapsed() >= config.max_runtime_s
                stop, late = runtime.agree(stop, late, device)
                if stop or late:
                    status = "cancelled" if stop else "timeout"
                    break
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    out = net(xb)
                loss = loss_fn(out.float(), yb)
                loss.backward()
                optimizer.step()
                state.step += 1
                value = runtime.mean(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDiverged(f"train loss is {value} at step {state.step}")
                losses.append(value)
                record = {"train_loss": value, "lr": lr}
                steps.append({"step": state.step, "epoch": epoch, **record})
                if runtime.is_main:
                    callbacks.on_step(state.step, epoch, dict(record))
            if status != "succeeded":
                break  # a partial epoch is discarded: no validation, no checkpoint
            if scheduler is not None:
                scheduler.step()
            metrics = evaluate(model.core, data, device, use_bf16)
            record = {
                "epoch": epoch,
                "step": state.step,
                "train_loss": float(np.mean(losses)),
                "lr": lr,
                **metrics,
                "epoch_time_s": round(time.perf_counter() - t0, 4),
            }
            state.history.append(record)
            state.epoch = epoch
            if _improved(metrics[template.monitor], state.best_value, template.monitor_mode):
                state.best_value, state.best_epoch, state.bad_epochs = (
                    metrics[template.monitor],
                    epoch,
                    0,
                )
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state.bad_epochs += 1
            patience = params["patience"]
            state.stopped_early = patience > 0 and state.bad_epochs >= patience and epoch < epochs
            session_epochs += 1
            if runtime.is_main:
                blob = _checkpoint(template, params, seed, data, runtime, state, model, best, optimizer, scheduler)
                callbacks.on_checkpoint(epoch, state.step, blob)
                done = state.stopped_early or epoch >= epochs
                progress = 1.0 if done else epoch / epochs
                eta = 0.0 if done else meter.elapsed() / session_epochs * (epochs - epoch)
                shown = {k: v for k, v in record.items() if k != "epoch"}
                callbacks.on_epoch_end(epoch, shown, progress, eta)

        runtime.finish(device)
        usage = meter.finish(gpus=runtime.world_size if device.type == "cuda" else 0)

    if best is not None:
        model.load_state_dict(best)
    model.to("cpu").eval()
    best_record = next((h for h in state.history if h["epoch"] == state.best_epoch), None)
    keys = ("train_loss", *template.metrics)
    result = TrainResult(
        status=status,  # type: ignore[arg-type]
        template=template.name,
        task=template.task,
        params=params,
        seed=seed,
        device=str(device),
        bf16=use_bf16,
        world_size=runtime.world_size,
        epochs_completed=state.epoch,
        best_epoch=state.best_epoch,
        stopped_early=state.stopped_early,
        metrics={k: best_record[k] for k in keys} if best_record else {},
        history={"epochs": state.history, "steps": steps},
        model=model,
        example_input=np.ascontiguousarray(data.x_val_raw[:EXAMPLE_ROWS]),
        dataset=data.describe(),
        resources=usage,
        versions=package_versions(),
        resumed_from_epoch=resumed_from,
    )
    if status == "timeout" and config.raise_on_timeout:
        raise MaxRuntimeExceeded(float(config.max_runtime_s or 0.0), result)
    return result


def _checkpoint(
    template: Template,
    params: dict[str, Any],
    seed: int,
    data: PreparedData,
    runtime: Runtime,
    state: LoopState,
    model: InferenceModel,
    best: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> bytes:
    header = {
        "template": template.name,
        "task": template.task,
        "params": params,
        "seed": seed,
        "epoch": state.epoch,
        "step": state.step,
        "world_size": runtime.world_size,
        "data_fingerprint": data.fingerprint,
        "dataset": data.describe(),
        "input_shape": list(data.input_shape),
        "n_outputs": data.n_outputs,
        "loop": asdict(state),
        "rng": {"scheme": "reseed sha256(seed:epoch:rank) at epoch start", "seed": seed},
        "torch": torch.__version__,
    }
    states = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    return encode_checkpoint(header, model.state_dict(), best, states)
