"""ONNX Runtime sessions: loaded once per version, warmed, cached by size with logged evictions."""

from __future__ import annotations

import logging
import threading

import numpy as np
import onnxruntime as ort
import pytest

from apps.core import vault
from apps.serving.inference import runtime
from tests.serving.conftest import rows, version_of


@pytest.fixture(autouse=True)
def _fresh_sessions():
    runtime.SESSIONS.clear()
    yield
    runtime.SESSIONS.clear()


@pytest.mark.django_db
def test_a_session_is_loaded_once_and_answers_like_the_model(scorer, mlp_onnx):
    v1 = version_of(scorer, 1)
    model = runtime.session_for(v1)
    assert runtime.session_for(v1) is model and runtime.cached_session(v1.pk) is model
    assert (model.input_names, model.output_names, model.label) == (["input"], ["output"], "fraud-score v1")
    batch = np.asarray(rows(3), dtype=np.float32)
    want = ort.InferenceSession(mlp_onnx[0], providers=["CPUExecutionProvider"]).run(None, {"input": batch})[0]
    assert np.allclose(model.run({"input": batch})["output"], want, atol=1e-6)
    assert model.nbytes == len(mlp_onnx[0]) and model.provider == "CPUExecutionProvider"


@pytest.mark.django_db
def test_concurrent_first_requests_load_the_version_once(scorer, monkeypatch):
    v2 = version_of(scorer, 2)
    v2.artifact, v2.model  # noqa: B018  (the rows are read here; the threads only decrypt)
    loads = []
    real = vault.blob_chunks

    def counting(blob):
        loads.append(blob.pk)
        return real(blob)

    monkeypatch.setattr(vault, "blob_chunks", counting)
    got = []
    threads = [threading.Thread(target=lambda: got.append(runtime.session_for(v2))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and len(got) == 8 and len({id(m) for m in got}) == 1


@pytest.mark.django_db
def test_sessions_past_the_memory_cap_are_evicted_least_recently_used_and_logged(scorer, settings, caplog, mlp_onnx):
    settings.SERVING_SESSION_CACHE_MB = 1
    models = []
    for vid in (101, 102, 103):
        model = runtime.build(mlp_onnx[0], version_id=vid, label=f"m v{vid}", signature={})
        model.nbytes = 400_000
        models.append(model)
    runtime.SESSIONS.put(models[0])
    runtime.SESSIONS.put(models[1])
    assert runtime.cached_session(101) is models[0]  # 101 is now the most recently used
    with caplog.at_level(logging.INFO, logger="apps.serving.inference.runtime"):
        runtime.SESSIONS.put(models[2])
    assert runtime.cached_session(102) is None
    assert runtime.cached_session(101) is models[0] and runtime.cached_session(103) is models[2]
    assert any("evicted" in r.getMessage() and "m v102" in r.getMessage() for r in caplog.records)
    assert runtime.SESSIONS.nbytes == 800_000


@pytest.mark.django_db
def test_an_unreadable_artifact_is_a_load_error_not_retried_at_once(scorer, monkeypatch):
    v1 = version_of(scorer, 1)
    calls = []

    def broken(blob):
        calls.append(1)
        raise vault.IntegrityError("tampered")

    monkeypatch.setattr(vault, "blob_chunks", broken)
    for _ in range(3):
        with pytest.raises(runtime.ModelLoadError):
            runtime.session_for(v1)
    assert len(calls) == 1


def test_session_options_follow_the_settings(settings):
    settings.SERVING_ORT_INTRA_THREADS = 3
    options = runtime._session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 1)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_cuda_is_chosen_only_where_offered_and_allowed(settings, monkeypatch):
    settings.SERVING_ORT_PROVIDER = "auto"
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert runtime.providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    settings.SERVING_ORT_PROVIDER = "cpu"
    assert runtime.providers() == ["CPUExecutionProvider"]
