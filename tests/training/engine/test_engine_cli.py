"""CLI via subprocess: --list, a one-epoch run with exports, param errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.numpy import load as np_load

from apps.training.engine.checkpoint import read_header

REPO_ROOT = Path(__file__).resolve().parents[3]


def _cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apps.training.engine", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_list_prints_templates_as_json():
    proc = _cli("--list")
    assert proc.returncode == 0, proc.stderr
    templates = {t["name"]: t for t in json.loads(proc.stdout)}
    assert {"tabular-mlp-classifier", "digits-cnn", "mlp-regressor"} <= set(templates)
    assert templates["digits-cnn"]["params"][0]["name"] == "channels"


@pytest.mark.slow
def test_one_epoch_run_with_exports(tmp_path):
    onnx_path, weights, ckpt = tmp_path / "m.onnx", tmp_path / "m.safetensors", tmp_path / "ck.safetensors"
    proc = _cli(
        "--template",
        "tabular-mlp-classifier",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--epochs",
        "1",
        "--params",
        '{"hidden_units": 8, "lr": 0.01}',
        "--export",
        str(onnx_path),
        "--exporter",
        "torchscript",
        "--safetensors",
        str(weights),
        "--checkpoint",
        str(ckpt),
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # stdout is exactly one JSON document
    assert summary["status"] == "succeeded" and summary["epochs_completed"] == 1
    assert summary["params"]["lr"] == 0.01 and summary["params"]["epochs"] == 1
    assert set(summary["metrics"]) == {"train_loss", "val_loss", "val_acc", "val_f1"}
    assert summary["export"]["exporter"] == "torchscript"
    assert summary["export"]["parity_max_abs_diff"] < 1e-4
    assert {"wall_s", "cpu_s", "peak_rss_mb", "gpu_s"} <= set(summary["resources"])
    assert {"torch", "numpy", "python"} <= set(summary["versions"])
    assert "ETA" in proc.stderr and "100.0%" in proc.stderr  # progress bar on stderr
    assert onnx_path.stat().st_size > 0 and np_load(weights.read_bytes())
    assert read_header(ckpt.read_bytes())["epoch"] == 1


def test_invalid_params_exit_2_with_field_errors():
    proc = _cli("--template", "digits-cnn", "--params", '{"lr": "fast", "bogus": 1}', "--quiet")
    assert proc.returncode == 2
    summary = json.loads(proc.stdout)
    assert summary["status"] == "error" and set(summary["errors"]) == {"lr", "bogus"}
