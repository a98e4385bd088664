"""Training loop: determinism, resume exactness, cancel, timeout, early stopping, data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from apps.training.engine.callbacks import Callbacks
from apps.training.engine.checkpoint import CheckpointError, decode_checkpoint, load_model_from_checkpoint
from apps.training.engine.config import InvalidParams, MaxRuntimeExceeded, TrainConfig
from apps.training.engine.data import DataError
from apps.training.engine.loop import train


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models on shared CI cores: OpenMP spin-waiting costs more than threads save."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


MLP = "tabular-mlp-classifier"
# Dropout + cosine schedule + shuffling: every RNG stream the loop owns is exercised.
SMALL = {"hidden_units": 16, "layers": 2, "dropout": 0.2, "batch_size": 16, "epochs": 3, "patience": 0}
METRIC_KEYS = ("epoch", "step", "train_loss", "lr", "val_loss", "val_acc", "val_f1")


class Recorder(Callbacks):
    """Collects events; optionally requests a stop after N steps or epochs."""

    def __init__(self, stop_after_steps: int | None = None, stop_after_epoch: int | None = None) -> None:
        self.steps: list[tuple[int, int, dict]] = []
        self.epochs: list[tuple[int, dict, float, float | None]] = []
        self.checkpoints: dict[int, bytes] = {}
        self.stop_after_steps = stop_after_steps
        self.stop_after_epoch = stop_after_epoch

    def on_step(self, step, epoch, metrics):
        self.steps.append((step, epoch, metrics))

    def on_epoch_end(self, epoch, metrics, progress, eta_s):
        self.epochs.append((epoch, metrics, progress, eta_s))

    def on_checkpoint(self, epoch, step, state):
        self.checkpoints[epoch] = state

    def should_stop(self):
        if self.stop_after_steps is not None and len(self.steps) >= self.stop_after_steps:
            return True
        return self.stop_after_epoch is not None and len(self.epochs) >= self.stop_after_epoch


def _epoch_metrics(history):
    return [{k: h[k] for k in METRIC_KEYS} for h in history]


def test_runs_and_reports_everything():
    rec = Recorder()
    result = train(TrainConfig(MLP, SMALL, device="cpu", seed=1), rec)
    assert result.status == "succeeded" and result.epochs_completed == 3
    assert set(result.metrics) == {"train_loss", "val_loss", "val_acc", "val_f1"}
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert result.metrics["val_acc"] > 0.5  # wine is easy; guards against a broken loop
    steps = [s for s, _, _ in rec.steps]
    assert steps == list(range(1, len(steps) + 1)) == [s["step"] for s in result.history["steps"]]
    assert [e for e, *_ in rec.epochs] == [1, 2, 3] and sorted(rec.checkpoints) == [1, 2, 3]
    progress = [p for _, _, p, _ in rec.epochs]
    assert progress == sorted(progress) and progress[-1] == 1.0 and rec.epochs[-1][3] == 0.0
    # Cosine schedule: LR decreases across epochs.
    lrs = [h["lr"] for h in result.history["epochs"]]
    assert lrs[0] > lrs[1] > lrs[2]
    assert not result.model.training and next(result.model.parameters()).device.type == "cpu"
    assert result.example_input.dtype == np.float32 and result.example_input.shape[1] == 13
    assert result.resources.wall_s > 0 and result.resources.cpu_s > 0 and result.resources.peak_rss_mb
    assert {"torch", "numpy", "python"} <= set(result.versions)
    assert result.dataset["name"] == "wine" and result.dataset["classes"] == [0, 1, 2]
    assert result.to_dict()["status"] == "succeeded"


def test_same_seed_is_deterministic_and_seed_matters():
    runs = [train(TrainConfig(MLP, SMALL, device="cpu", seed=7)) for _ in range(2)]
    assert runs[0].history["steps"] == runs[1].history["steps"]
    assert _epoch_metrics(runs[0].history["epochs"]) == _epoch_metrics(runs[1].history["epochs"])
    for a, b in zip(runs[0].model.state_dict().values(), runs[1].model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = train(TrainConfig(MLP, SMALL, device="cpu", seed=8))
    assert other.history["steps"] != runs[0].history["steps"]


def test_resume_after_interruption_matches_uninterrupted_run():
    full_rec = Recorder()
    full = train(TrainConfig(MLP, SMALL, device="cpu", seed=3), full_rec)

    cut_rec = Recorder(stop_after_epoch=1)  # "killed" right after epoch 1's checkpoint
    cut = train(TrainConfig(MLP, SMALL, device="cpu", seed=3), cut_rec)
    assert cut.status == "cancelled" and cut.epochs_completed == 1
    boundary = decode_checkpoint(cut_rec.checkpoints[1])[0]["step"]

    resumed_rec = Recorder()
    resumed = train(TrainConfig(MLP, {}, device="cpu", resume_from=cut_rec.checkpoints[1]), resumed_rec)
    assert resumed.status == "succeeded" and resumed.resumed_from_epoch == 1 and resumed.seed == 3
    later = [s for s in full.history["steps"] if s["step"] > boundary]
    assert resumed.history["steps"] == later  # same step numbers, losses and LRs, bit for bit
    assert resumed_rec.steps[0][0] == boundary + 1
    assert _epoch_metrics(resumed.history["epochs"]) == _epoch_metrics(full.history["epochs"])
    assert resumed.metrics == full.metrics and resumed.best_epoch == full.best_epoch
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # The final checkpoints agree tensor for tensor as well.
    _, m1, b1, s1 = decode_checkpoint(full_rec.checkpoints[3])
    _, m2, b2, s2 = decode_checkpoint(resumed_rec.checkpoints[3])
    assert all(torch.equal(m1[k], m2[k]) for k in m1) and all(torch.equal(b1[k], b2[k]) for k in b1)
    assert s1["scheduler"] == s2["scheduler"]


def test_resume_rejects_mismatched_runs():
    rec = Recorder(stop_after_epoch=1)
    train(TrainConfig(MLP, SMALL, device="cpu", seed=3), rec)
    ckpt = rec.checkpoints[1]
    with pytest.raises(CheckpointError, match="params"):
        train(TrainConfig(MLP, {**SMALL, "lr": 0.5}, device="cpu", resume_from=ckpt))
    with pytest.raises(CheckpointError, match="seed"):
        train(TrainConfig(MLP, SMALL, device="cpu", seed=4, resume_from=ckpt))
    with pytest.raises(CheckpointError, match="template"):
        train(TrainConfig("mlp-regressor", {}, device="cpu", resume_from=ckpt))
    with pytest.raises(CheckpointError, match="data"):
        train(TrainConfig(MLP, SMALL, device="cpu", seed=3, dataset="breast_cancer", resume_from=ckpt))
    with pytest.raises(CheckpointError):
        train(TrainConfig(MLP, SMALL, device="cpu", resume_from=b"not a checkpoint at all"))


def test_checkpoint_rebuilds_model():
    rec = Recorder()
    result = train(TrainConfig(MLP, {**SMALL, "epochs": 2}, device="cpu"), rec)
    model = load_model_from_checkpoint(rec.checkpoints[2])
    x = torch.from_numpy(result.example_input)
    with torch.no_grad():
        assert torch.equal(model(x), result.model(x))


def test_cancel_between_steps():
    rec = Recorder(stop_after_steps=4)
    result = train(TrainConfig(MLP, SMALL, device="cpu"), rec)
    assert result.status == "cancelled"
    assert len(result.history["steps"]) == 4 and result.epochs_completed == 0
    assert result.metrics == {} and rec.checkpoints == {}


def test_max_runtime_returns_timeout_or_raises():
    result = train(TrainConfig(MLP, SMALL, device="cpu", max_runtime_s=0.0))
    assert result.status == "timeout" and result.history["steps"] == []
    with pytest.raises(MaxRuntimeExceeded) as excinfo:
        train(TrainConfig(MLP, SMALL, device="cpu", max_runtime_s=0.0, raise_on_timeout=True))
    assert excinfo.value.result is not None and excinfo.value.result.status == "timeout"


def test_early_stopping_restores_best_epoch():
    # Random labels: validation loss stops improving once the MLP starts memorising.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(120, 6)), rng.integers(0, 2, size=120)
    params = {"hidden_units": 64, "lr": 0.03, "epochs": 60, "patience": 2, "dropout": 0.0, "scheduler": "none"}
    result = train(TrainConfig(MLP, params, device="cpu", X=X, y=y))
    assert result.status == "succeeded" and result.stopped_early
    assert result.epochs_completed < 60
    assert result.best_epoch == result.epochs_completed - 2
    best = min(h["val_loss"] for h in result.history["epochs"])
    assert result.metrics["val_loss"] == best


def test_regression_metrics_and_caller_arrays():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4)).astype(np.float64) * 10 + 5
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 100.0
    params = {"hidden_units": 32, "epochs": 15, "lr": 0.01, "batch_size": 32, "dropout": 0.0}
    result = train(TrainConfig("mlp-regressor", params, device="cpu", X=X, y=y))
    assert set(result.metrics) == {"train_loss", "val_loss", "val_rmse", "val_mae", "val_r2"}
    assert result.metrics["val_r2"] > 0.8
    # The inference model takes raw features and returns raw-unit predictions.
    with torch.no_grad():
        pred = result.model(torch.from_numpy(X[:20].astype(np.float32))).numpy().ravel()
    assert np.sqrt(np.mean((pred - y[:20]) ** 2)) < 3 * result.metrics["val_rmse"] + 1.0


def test_string_labels_and_digits_reshape():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(40, 3)), np.array(["cat", "dog"] * 20)
    result = train(TrainConfig(MLP, {"epochs": 1, "hidden_units": 8}, device="cpu", X=X, y=y))
    assert result.dataset["classes"] == ["cat", "dog"]
    digits = train(TrainConfig("digits-cnn", {"epochs": 1, "channels": 4}, device="cpu", max_runtime_s=60))
    assert digits.example_input.shape[1:] == (1, 8, 8) and digits.metrics["val_acc"] > 0.3


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(InvalidParams) as excinfo:
        train(TrainConfig(MLP, {"lr": -1, "nope": 1}, device="cpu"))
    assert set(excinfo.value.errors) == {"lr", "nope"}
    with pytest.raises(DataError):
        train(TrainConfig(MLP, {}, device="cpu", X=np.zeros((10, 2)), y=np.zeros(10)))  # one class
    with pytest.raises(DataError):
        train(TrainConfig(MLP, {}, device="cpu", X=np.full((10, 2), np.nan), y=np.arange(10) % 2))
    with pytest.raises(DataError):
        train(TrainConfig("digits-cnn", {}, device="cpu", X=np.zeros((10, 5)), y=np.arange(10) % 2))
    with pytest.raises(ValueError, match="unsupported device"):
        train(TrainConfig(MLP, {}, device="tpu"))


def test_bf16_is_ignored_on_cpu():
    result = train(TrainConfig(MLP, {**SMALL, "epochs": 1}, device="cpu", bf16=True))
    assert result.bf16 is False and result.status == "succeeded"


def test_determinism_flags_are_restored():
    before = torch.are_deterministic_algorithms_enabled()
    train(TrainConfig(MLP, {**SMALL, "epochs": 1}, device="cpu"))
    assert torch.are_deterministic_algorithms_enabled() == before
