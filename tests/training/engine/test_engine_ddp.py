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


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ranks_start_from_a_daemonic_process(monkeypatch):
    """Celery's prefork pool processes are daemonic; multiprocessing refuses them children."""
    import multiprocessing

    config = multiprocessing.current_process()._config
    monkeypatch.setitem(config, "daemon", True)
    params = {"epochs": 1, "channels": 4, "batch_size": 256}
    result = train_distributed(TrainConfig("digits-cnn", params, device="cpu", seed=0), 2)
    assert result.status == "succeeded" and result.world_size == 2
    assert config["daemon"] is True  # restored for the rest of the process


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ranks_die_with_the_training_process(tmp_path):
    """A worker killed mid-training must not leave its ranks running (on a GPU, holding it)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    trainer = subprocess.Popen(
        [sys.executable, "-m", "apps.training.engine", "--template", "digits-cnn", "--device", "cpu", "--ddp", "2",
         "--epochs", "500", "--params", '{"channels": 4, "batch_size": 8}', "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        ranks: list[psutil.Process] = []
        while len(ranks) < 2:
            assert time.monotonic() < deadline and trainer.poll() is None, "the ranks never started"
            ranks = [p for p in psutil.Process(trainer.pid).children() if "spawn_main" in " ".join(p.cmdline())]
            time.sleep(0.2)
        time.sleep(1.0)
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(10)
        gone, alive = psutil.wait_procs(ranks, timeout=15)
        assert not alive, f"ranks outlived the trainer: {[p.pid for p in alive]}"
    finally:
        if trainer.poll() is None:
            trainer.kill()
