"""ONNX export (dynamic batch, parity gate, exporter fallback) and safetensors export."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from apps.training.engine import export as export_mod
from apps.training.engine.config import TrainConfig
from apps.training.engine.export import (
    ParityError,
    dynamo_available,
    export_onnx,
    export_result_onnx,
    export_safetensors,
    load_safetensors_model,
    model_metadata,
)
from apps.training.engine.loop import train


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Tiny models on shared CI cores: OpenMP spin-waiting costs more than threads save."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def digits_result():
    return train(TrainConfig("digits-cnn", {"epochs": 1, "channels": 4}, device="cpu", seed=0))


@pytest.fixture(scope="module")
def regressor_result():
    params = {"epochs": 2, "hidden_units": 16, "dropout": 0.0}
    return train(TrainConfig("mlp-regressor", params, device="cpu", seed=0))


def _ort_run(onnx_bytes: bytes, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


@pytest.mark.skipif(not dynamo_available(), reason="onnxscript not installed")
def test_dynamo_export_has_dynamic_batch_and_parity(digits_result):
    exported = export_result_onnx(digits_result)
    assert exported.exporter == "dynamo" and exported.fallback_reason is None
    assert exported.parity_max_abs_diff < 1e-4
    assert exported.input_names == ["input"] and exported.output_names == ["logits"]
    assert any(size != export_mod.EXPORT_BATCH for size in exported.batch_sizes_checked)
    proto = onnx.load_from_string(exported.onnx_bytes)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    # Raw pixels in (normalisation is inside the graph), any batch size.
    batch = digits_result.example_input[:5]
    with torch.no_grad():
        expected = digits_result.model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(_ort_run(exported.onnx_bytes, batch), expected, atol=1e-4)


def test_torchscript_export_regression_raw_units(regressor_result):
    exported = export_result_onnx(regressor_result, exporter="torchscript")
    assert exported.exporter == "torchscript" and exported.output_names == ["prediction"]
    assert exported.parity_max_abs_diff <= exported.parity_threshold
    batch = regressor_result.example_input[:7]
    out = _ort_run(exported.onnx_bytes, batch)
    assert out.shape == (7, 1) and 0 < float(np.mean(out)) < 400  # diabetes targets, raw units
    assert exported.summary()["size_bytes"] == len(exported.onnx_bytes)


def test_falls_back_to_torchscript_when_dynamo_fails(monkeypatch, regressor_result):
    monkeypatch.setattr(export_mod, "dynamo_available", lambda: True)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setattr(export_mod, "_export_dynamo", broken)
    exported = export_result_onnx(regressor_result)
    assert exported.exporter == "torchscript" and "simulated dynamo failure" in exported.fallback_reason
    with pytest.raises(RuntimeError, match="simulated"):
        export_result_onnx(regressor_result, exporter="dynamo")  # explicit choice: no fallback

    monkeypatch.setattr(export_mod, "dynamo_available", lambda: False)
    exported = export_result_onnx(regressor_result)
    assert exported.exporter == "torchscript" and "onnxscript" in exported.fallback_reason


def test_broken_parity_raises(monkeypatch, digits_result):
    real = export_mod._run_onnx

    def perturbed(session, name, batch):
        return real(session, name, batch) + 1e-2

    monkeypatch.setattr(export_mod, "_run_onnx", perturbed)
    with pytest.raises(ParityError) as excinfo:
        export_onnx(digits_result.model, digits_result.example_input, exporter="torchscript", rtol=0.0)
    assert excinfo.value.max_abs_diff == pytest.approx(1e-2, rel=1e-2)
    assert "1e-4" in str(excinfo.value).replace("0.0001", "1e-4")


def test_export_does_not_mutate_model(digits_result):
    model = digits_result.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, digits_result.example_input[:1], exporter="torchscript")  # 1 row gets tiled
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_safetensors_export_round_trip(digits_result):
    blob = export_safetensors(digits_result.model, model_metadata(digits_result))
    rebuilt = load_safetensors_model(blob)
    x = torch.from_numpy(digits_result.example_input)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), digits_result.model(x))
