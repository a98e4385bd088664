"""DistributedDataParallel training: one spawned process per GPU (nccl) or CPU rank (gloo).

Only rank 0 reports. Its events travel to the parent over a multiprocessing
queue and the parent invokes the caller's callbacks, so callbacks never need
to be picklable; cancellation flows back through a shared Event.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from .callbacks import Callbacks, TrainingCallbacks, as_callbacks
from .checkpoint import CheckpointError, build_inference_model
from .config import (
    InvalidParams,
    MaxRuntimeExceeded,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
)
from .data import DataError, PreparedData, make_loader
from .loop import Runtime, run_training
from .resources import children_cpu_s, peak_rss_mb
from .templates import get_template

_POLL_S = 0.05
_REraisable = {cls.__name__: cls for cls in (DataError, CheckpointError, TrainingDiverged)}


class DistributedTrainingError(RuntimeError):
    """A worker process failed; the message carries rank 0's traceback if any."""


class DDPRuntime(Runtime):
    def __init__(self, rank: int, world_size: int, use_cuda: bool) -> None:
        self.rank = rank
        self.world_size = world_size
        self.use_cuda = use_cuda

    def resolve_device(self, requested: str) -> torch.device:
        # Single node: the global rank is the local GPU index.
        return torch.device("cuda", self.rank) if self.use_cuda else torch.device("cpu")

    def wrap(self, core: nn.Module, device: torch.device) -> nn.Module:
        return DistributedDataParallel(core, device_ids=[device.index] if self.use_cuda else None)

    def loader(self, data: PreparedData, batch_size: int, seed: int, epoch: int):
        # Same (seed, epoch) on every rank -> one global permutation, disjoint shards.
        sampler = DistributedSampler(
            range(len(data.x_train)),  # type: ignore[arg-type]  # only len() is used
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=True,
            seed=seed,
        )
        sampler.set_epoch(epoch)
        return make_loader(data.x_train, data.y_train, batch_size, sampler=sampler)

    def agree(self, stop: bool, timeout: bool, device: torch.device) -> tuple[bool, bool]:
        flags = torch.tensor([float(stop), float(timeout)], device=device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0].item()), bool(flags[1].item())

    def mean(self, value: torch.Tensor) -> float:
        total = value.detach().float().clone()
        dist.all_reduce(total)
        return float(total.item()) / self.world_size

    def finish(self, device: torch.device) -> None:
        # nccl wants to know the rank's GPU, otherwise it guesses (and warns).
        dist.barrier(device_ids=[device.index] if self.use_cuda else None)


class _QueueCallbacks(Callbacks):
    """Rank 0's callbacks: forward events to the parent, read cancellation from it."""

    def __init__(self, events: Any, stop_event: Any) -> None:
        self.events = events
        self.stop_event = stop_event

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.events.put(("step", step, epoch, metrics))

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        self.events.put(("epoch", epoch, metrics, progress, eta_s))

    def on_checkpoint(self, epoch: int, step: int, state: bytes) -> None:
        self.events.put(("checkpoint", epoch, step, state))

    def should_stop(self) -> bool:
        return self.stop_event.is_set()


def _worker(
    rank: int,
    world_size: int,
    backend: str,
    init_method: str,
    config: TrainConfig,
    events: Any,
    stop_event: Any,
    parent_pid: int,
) -> None:
    # The parent turns Ctrl-C into a cooperative stop; workers must not die on it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    use_cuda = backend == "nccl"
    if use_cuda:
        torch.cuda.set_device(rank)
    else:
        # Ranks share the CPU; default thread pools would oversubscribe it.
        torch.set_num_threads(config.num_threads or max(1, (os.cpu_count() or 1) // world_size))
    dist.init_process_group(
        backend,
        init_method=init_method,
        rank=rank,
        world_size=world_size,
        timeout=timedelta(minutes=10),
    )
    try:
        callbacks = _QueueCallbacks(events, stop_event) if rank == 0 else Callbacks()
        result = run_training(config, callbacks, DDPRuntime(rank, world_size, use_cuda))
        if rank == 0:
            model = result.model
            assert model is not None  # noqa: S101  type narrowing: rank 0 always has the model
            state = st_save({k: v.contiguous() for k, v in model.state_dict().items()})
            events.put(("result", replace(result, model=None), state))
    except BaseException as exc:
        if rank == 0:
            events.put(("error", type(exc).__name__, str(exc), traceback.format_exc()))
        raise
    finally:
        dist.destroy_process_group()


def train_distributed(
    config: TrainConfig,
    world_size: int,
    callbacks: TrainingCallbacks | None = None,
) -> TrainResult:
    """Run `config` under DDP with `world_size` processes; returns rank 0's result.

    CUDA (device 'cuda' or 'auto' with enough GPUs): nccl, one GPU per rank.
    Otherwise gloo on CPU. `batch_size` is per process.
    """
    if world_size < 1:
        raise ValueError("world_size must be >= 1")
    template = get_template(config.template)
    if config.params:  # fail fast in the parent instead of in every worker
        _, errors = template.validate(config.params)
        if errors:
            raise InvalidParams(errors)
    use_cuda = _use_cuda(config.device, world_size)
    backend = "nccl" if use_cuda else "gloo"
    cbs = as_callbacks(callbacks)
    worker_config = replace(config, raise_on_timeout=False)

    wall0, cpu0, child_cpu0 = time.perf_counter(), time.process_time(), children_cpu_s()
    ctx = mp.get_context("spawn")
    events, stop_event = ctx.Queue(), ctx.Event()
    outcome: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ddp-store-") as tmp:
        init_method = Path(tmp, "store").as_uri()
        with _worker_env(backend), _allow_children():
            procs = mp.start_processes(
                _worker,
                args=(world_size, backend, init_method, worker_config, events, stop_event, os.getpid()),
                nprocs=world_size,
                join=False,
                start_method="spawn",
            )
        done = False
        try:
            while not done:
                _drain(events, cbs, outcome, block=True)
                if cbs.should_stop():
                    stop_event.set()
                done = procs.join(timeout=0)
        except mp.ProcessRaisedException as exc:
            _drain(events, cbs, outcome, block=False)
            _raise_worker_error(outcome, exc)
        except mp.ProcessExitedException as exc:
            raise DistributedTrainingError(f"a DDP worker died: {exc}") from exc
        finally:
            if not done:  # e.g. a callback raised or a second Ctrl-C: don't leave orphans
                for proc in procs.processes:
                    if proc.is_alive():
                        proc.terminate()
                    proc.join(timeout=10)
        _drain(events, cbs, outcome, block=False)

    if "result" not in outcome:
        _raise_worker_error(outcome, None)
    result: TrainResult = outcome["result"]
    result.model = build_inference_model(
        result.template,
        result.params,
        tuple(result.dataset["input_shape"]),
        result.dataset["n_outputs"],
        st_load(outcome["state"]),
    )
    usage = result.resources
    usage.wall_s = round(time.perf_counter() - wall0, 3)
    usage.cpu_s = round(time.process_time() - cpu0 + children_cpu_s() - child_cpu0, 3)
    usage.peak_rss_mb = max(filter(None, (peak_rss_mb(), peak_rss_mb("children"))), default=None)
    if result.status == "timeout" and config.raise_on_timeout:
        raise MaxRuntimeExceeded(float(config.max_runtime_s or 0.0), result)
    return result


@contextmanager
def _allow_children() -> Iterator[None]:
    """Let a daemonic process (a Celery prefork pool process) spawn the ranks.

    multiprocessing refuses children in daemonic processes because they would be orphaned when
    the daemon is terminated. Here that cannot happen: the ranks are joined or terminated before
    train_distributed returns, and each rank dies with its parent (`_die_with_parent`).
    """
    config = multiprocessing.current_process()._config
    saved = config.get("daemon")
    config["daemon"] = False
    try:
        yield
    finally:
        if saved is None:
            config.pop("daemon", None)
        else:
            config["daemon"] = saved


def _die_with_parent(parent_pid: int) -> None:
    """A rank must not outlive the process that trains (a killed worker would leave it on the GPU)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


@contextmanager
def _worker_env(backend: str) -> Iterator[None]:
    """Environment inherited by spawned workers only; the parent's is restored."""
    saved = os.environ.get("GLOO_SOCKET_IFNAME")
    if backend == "gloo" and saved is None and sys.platform.startswith("linux") and Path("/sys/class/net/lo").exists():
        # Gloo otherwise binds to the hostname's address, which containers often cannot resolve.
        os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("GLOO_SOCKET_IFNAME", None)


def _use_cuda(device: str, world_size: int) -> bool:
    if device == "cpu":
        return False
    if device == "auto":
        return torch.cuda.is_available() and torch.cuda.device_count() >= world_size
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    if torch.cuda.device_count() < world_size:
        raise RuntimeError(f"ddp with {world_size} ranks needs {world_size} GPUs; found {torch.cuda.device_count()}")
    return True


def _drain(events: Any, cbs: Callbacks, outcome: dict[str, Any], *, block: bool) -> None:
    """Dispatch queued rank-0 events; waits up to one poll interval when `block`."""
    timeout = _POLL_S if block else 0.2
    while True:
        try:
            event = events.get(timeout=timeout)
        except queue.Empty:
            return
        timeout = 0.0 if block else 0.2
        kind = event[0]
        if kind == "step":
            cbs.on_step(*event[1:])
        elif kind == "epoch":
            cbs.on_epoch_end(*event[1:])
        elif kind == "checkpoint":
            cbs.on_checkpoint(*event[1:])
        elif kind == "result":
            outcome["result"], outcome["state"] = event[1], event[2]
        elif kind == "error":
            outcome["error"] = event[1:]


def _raise_worker_error(outcome: dict[str, Any], cause: BaseException | None) -> None:
    if "error" in outcome:
        name, message, tb = outcome["error"]
        if name in _REraisable:
            raise _REraisable[name](message) from cause
        raise DistributedTrainingError(f"rank 0 failed with {name}: {message}\n{tb}") from cause
    raise DistributedTrainingError(f"DDP workers failed: {cause}") from cause
