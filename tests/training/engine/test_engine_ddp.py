"""DistributedDataParallel on CPU: two gloo processes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from apps.training.engine.callbacks import Callbacks
from apps.training.engine.checkpoint import read_header
from apps.training.engine.config import InvalidParams, TrainConfig
from apps.training.engine.distributed import train_distributed


class Recorder(Callbacks):
    """Not picklable on purpose (holds a lambda): callbacks stay in the parent."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.epochs: list[int] = []
        self.checkpoints: list[bytes] = []
        self._unpicklable = lambda: None

    def on_step(self, step, epoch, metrics):
        self.steps.append(step)

    def on_epoch_end(self, epoch, metrics, progress, eta_s):
        self.epochs.append(epoch)

    def on_checkpoint(self, epoch, step, state):
        self.checkpoints.append(state)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_gloo_processes_train_digits_cnn():
    rec = Recorder()
    params = {"epochs": 1, "channels": 4, "batch_size": 128}
    result = train_distributed(TrainConfig("digits-cnn", params, device="cpu", seed=0), 2, rec)
    assert result.status == "succeeded" and result.world_size == 2 and result.epochs_completed == 1
    assert set(result.metrics) == {"train_loss", "val_loss", "val_acc", "val_f1"}
    assert all(math.isfinite(v) for v in result.metrics.values())
    # 1437 training images sharded over 2 ranks at 128 per step -> 6 steps.
    assert rec.steps == list(range(1, 7)) and rec.epochs == [1]
    header = read_header(rec.checkpoints[-1])
    assert header["world_size"] == 2 and header["step"] == 6
    assert result.model is not None and not result.model.training
    with torch.no_grad():
        out = result.model(torch.from_numpy(result.example_input))
    assert out.shape == (len(result.example_input), 10) and bool(torch.isfinite(out).all())
    assert result.resources.cpu_s > 0 and result.resources.wall_s > 0
    assert np.isfinite([s["train_loss"] for s in result.history["steps"]]).all()


def test_invalid_params_fail_before_spawning():
    with pytest.raises(InvalidParams):
        train_distributed(TrainConfig("digits-cnn", {"channels": 0}, device="cpu"), 2)
