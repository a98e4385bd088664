"""Callback protocol through which the portal observes and steers a run."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Protocol, TextIO, runtime_checkable


@runtime_checkable
class TrainingCallbacks(Protocol):
    """What the loop calls. Subclass `Callbacks` to get no-op defaults.

    Calls happen in the training process (for DDP: in the parent process, fed
    by rank 0), synchronously, so slow callbacks slow training down.
    """

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """After every optimiser step; `step` is global and 1-based."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        """After validation of `epoch` (1-based); progress in [0, 1]."""

    def on_checkpoint(self, epoch: int, step: int, state: bytes) -> None:
        """Checkpoint bytes (see `checkpoint.py`) written after every epoch."""

    def should_stop(self) -> bool:
        """Polled before every step; True cancels the run cooperatively."""
        return False


class Callbacks:
    """No-op base class implementing `TrainingCallbacks`."""

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        pass

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        pass

    def on_checkpoint(self, epoch: int, step: int, state: bytes) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class CallbackList(Callbacks):
    """Fan events out to several callback objects; stop if any asks to."""

    def __init__(self, callbacks: Iterable[Any]) -> None:
        self.callbacks = [as_callbacks(cb) for cb in callbacks if cb is not None]

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_step(step, epoch, metrics)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, metrics, progress, eta_s)

    def on_checkpoint(self, epoch: int, step: int, state: bytes) -> None:
        for cb in self.callbacks:
            cb.on_checkpoint(epoch, step, state)

    def should_stop(self) -> bool:
        return any(cb.should_stop() for cb in self.callbacks)


class _Adapter(Callbacks):
    """Lets duck-typed objects implement only the hooks they care about."""

    def __init__(self, target: Any) -> None:
        self.target = target
        for name in ("on_step", "on_epoch_end", "on_checkpoint", "should_stop"):
            hook = getattr(target, name, None)
            if callable(hook):
                setattr(self, name, hook)


def as_callbacks(obj: Any) -> Callbacks:
    if obj is None:
        return Callbacks()
    if isinstance(obj, Callbacks):
        return obj
    return _Adapter(obj)


class ProgressPrinter(Callbacks):
    """One progress-bar line per epoch, e.g. for the CLI's stderr."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.width = width

    def on_epoch_end(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        filled = int(round(progress * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("val_") or k == "train_loss")
        self.stream.write(f"[{bar}] {progress * 100:5.1f}% epoch {epoch} ETA {format_eta(eta_s)} {shown}\n")
        self.stream.flush()


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
