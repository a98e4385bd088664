"""Checkpoint format: safetensors + JSON header, never pickle."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch
from safetensors.numpy import load as np_load

from apps.training.engine.callbacks import Callbacks
from apps.training.engine.checkpoint import (
    FORMAT,
    CheckpointError,
    decode_checkpoint,
    encode_checkpoint,
    read_header,
)
from apps.training.engine.config import TrainConfig
from apps.training.engine.loop import train


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models on shared CI cores: OpenMP spin-waiting costs more than threads save."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class Keep(Callbacks):
    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def on_checkpoint(self, epoch, step, state):
        self.blobs.append(state)


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    keep = Keep()
    params = {"hidden_units": 8, "epochs": 2, "batch_size": 32, "scheduler": "step"}
    train(TrainConfig("tabular-mlp-classifier", params, device="cpu", seed=5), keep)
    return keep.blobs[-1]


def test_checkpoint_is_plain_safetensors_with_json_header(checkpoint):
    # Layout: u64 little-endian header length, JSON header, raw tensor bytes.
    (size,) = struct.unpack("<Q", checkpoint[:8])
    raw_header = json.loads(checkpoint[8 : 8 + size])
    assert raw_header["__metadata__"]["format"] == FORMAT
    header = json.loads(raw_header["__metadata__"]["header"])
    assert header["epoch"] == 2 and header["step"] > 0 and header["seed"] == 5
    assert header["template"] == "tabular-mlp-classifier" and header["params"]["epochs"] == 2
    assert header["loop"]["best_epoch"] in (1, 2) and len(header["loop"]["history"]) == 2
    assert {"optimizer", "scheduler"} <= set(header["states"])
    assert header["rng"]["seed"] == 5
    # Readable without torch at all: the safetensors NumPy backend parses it.
    arrays = np_load(checkpoint)
    assert any(k.startswith("model.core.") for k in arrays) and "model.x_mean" in arrays
    assert any(k.startswith("best.") for k in arrays) and any(k.startswith("state.") for k in arrays)
    assert all(isinstance(v, np.ndarray) for v in arrays.values())


def test_checkpoint_contains_no_pickle(checkpoint):
    assert not checkpoint.startswith(b"\x80")  # pickle protocol 2+ opcode
    assert b"PK\x03\x04" not in checkpoint[:64]  # torch.save zip container
    with pytest.raises(Exception):  # noqa: B017 - any failure proves it is not a torch pickle
        torch.load(__import__("io").BytesIO(checkpoint), weights_only=True)


def test_decode_restores_optimizer_and_scheduler_state(checkpoint):
    header, model, best, states = decode_checkpoint(checkpoint)
    opt = states["optimizer"]
    assert isinstance(opt["param_groups"][0]["betas"], tuple)  # tuples survive the JSON trip
    assert set(opt["state"]) == set(range(len(opt["state"])))  # int keys survive too
    assert all(isinstance(v["exp_avg"], torch.Tensor) for v in opt["state"].values())
    assert states["scheduler"]["step_size"] >= 1
    assert model.keys() == best.keys() and read_header(checkpoint)["epoch"] == header["epoch"]


def test_encoder_round_trips_tagged_values():
    states = {"s": {"t": (1, 2.5), 3: [float("inf"), None, True], "__x": "y", "w": torch.arange(3)}}
    blob = encode_checkpoint({"epoch": 0, "val_loss": float("nan")}, {"w": torch.ones(2)}, None, states)
    header, model, best, decoded = decode_checkpoint(blob)
    assert header["epoch"] == 0 and math.isnan(header["val_loss"])  # strict JSON on disk, NaN back
    inner = decoded["s"]
    assert inner["t"] == (1, 2.5) and inner[3][0] == math.inf and inner[3][1:] == [None, True]
    assert inner["__x"] == "y" and torch.equal(inner["w"], torch.arange(3))
    assert torch.equal(model["w"], torch.ones(2)) and best == {}


def test_rejects_foreign_or_corrupt_bytes():
    from safetensors.torch import save

    with pytest.raises(CheckpointError):
        read_header(save({"w": torch.zeros(1)}))  # safetensors, but not ours
    with pytest.raises(CheckpointError):
        read_header(b"\x01\x02")
    with pytest.raises(CheckpointError):
        encode_checkpoint({}, {}, None, {"bad": object()})
