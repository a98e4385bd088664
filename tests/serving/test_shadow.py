"""Shadow routes: copies off the request path, compared and counted; never changing or failing an answer."""

from __future__ import annotations

import queue

import numpy as np
import pytest

from apps.catalog import services as catalog
from apps.serving.inference import cache, logbook, shadow
from apps.serving.inference.logbook import flush
from apps.serving.inference.predict import predict_call
from apps.serving.models import PredictionLog, TrafficWindow
from tests.serving.conftest import make_endpoint, mlp, onnx_of, register, rows, version_of


@pytest.fixture(autouse=True)
def _quiet_background():
    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    logbook.discard()
    shadow.drain()
    yield
    shadow.drain()
    logbook.discard()
    cache.STATE.reset()


def call(user, name: str, batch):
    return predict_call(user=user, token=None, endpoint_name=name, body={"inputs": batch})


def with_shadow(owner, scorer, shadow_version, name="shadowed", **route):
    return make_endpoint(
        owner,
        name,
        [
            {"name": "main", "model": scorer, "version": version_of(scorer, 1)},
            {"name": "candidate", "model": shadow_version.model, "version": shadow_version, "mode": "shadow", **route},
        ],
    )


@pytest.mark.django_db
def test_a_shadow_never_changes_the_answer_and_its_comparison_is_counted(owner, scorer):
    make_endpoint(owner, "plain", [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}])
    with_shadow(owner, scorer, version_of(scorer, 2))
    batch = rows(4)
    for _ in range(5):
        status, shadowed, _ = call(owner, "shadowed", batch)
        assert status == 200
        _, plain, _ = call(owner, "plain", batch)
        assert shadowed["outputs"] == plain["outputs"] and shadowed["route"] == "main" and shadowed["version"] == 1
    assert shadow.drain() == 5
    flush()
    window = TrafficWindow.objects.get(route="candidate")
    assert window.mode == "shadow" and window.requests == 5 and window.errors == 0
    assert window.shadow_compared == 20
    assert window.shadow_abs_diff_sum > 0  # a different model answers differently
    assert 0 <= window.shadow_agreed <= 20


@pytest.mark.django_db
def test_the_same_model_as_shadow_agrees_on_every_row(owner, scorer):
    with_shadow(owner, scorer, version_of(scorer, 1))
    for _ in range(3):
        assert call(owner, "shadowed", rows(5))[0] == 200
    shadow.drain()
    flush()
    window = TrafficWindow.objects.get(route="candidate")
    assert (window.shadow_compared, window.shadow_agreed) == (15, 15)
    assert window.shadow_abs_diff_sum == pytest.approx(0.0, abs=1e-6)


@pytest.mark.django_db
def test_a_failing_shadow_never_fails_an_answer_and_is_counted_as_errors(owner, scorer):
    other = catalog.model_create(actor=owner, name="narrow", description="")
    narrow = register(other, owner, onnx_of(mlp(5, features=29), features=29))  # ORT refuses 30-wide rows
    with_shadow(owner, scorer, narrow)
    for _ in range(4):
        status, body, _ = call(owner, "shadowed", rows(2))
        assert status == 200 and body["route"] == "main"
    shadow.drain()
    flush()
    window = TrafficWindow.objects.get(route="candidate")
    assert (window.requests, window.errors, window.shadow_compared) == (4, 4, 0)
    failures = PredictionLog.objects.filter(route="candidate", mode="shadow")
    assert failures.count() == 4 and all(f.status == 500 and f.error for f in failures)


@pytest.mark.django_db
def test_a_full_queue_drops_copies_and_counts_them(owner, scorer, monkeypatch):
    with_shadow(owner, scorer, version_of(scorer, 2))
    monkeypatch.setattr(shadow.WORKER, "queue", queue.Queue(maxsize=2))
    for _ in range(5):
        assert call(owner, "shadowed", rows(1))[0] == 200
    flush()
    window = TrafficWindow.objects.get(route="candidate")
    assert window.shadow_dropped == 3


@pytest.mark.django_db
def test_a_partial_shadow_weight_copies_a_share(owner, scorer):
    with_shadow(owner, scorer, version_of(scorer, 2), weight=20)
    for _ in range(300):
        call(owner, "shadowed", rows(1))
    copied = shadow.drain()
    assert 20 <= copied <= 100  # 60 expected; far outside 4 sigma otherwise


def test_compare_uses_argmax_for_class_scores_and_tolerance_otherwise():
    a = np.array([[0.1, 0.9], [0.8, 0.2], [0.4, 0.6]])
    b = np.array([[0.2, 0.8], [0.1, 0.9], [0.3, 0.7]])
    compared, agreed, diff = shadow.compare({"y": a}, {"y": b})
    assert (compared, agreed) == (3, 2)
    assert diff == pytest.approx(np.abs(a - b).mean(axis=1).sum())
    compared, agreed, _ = shadow.compare({"y": np.array([1.0, 2.0])}, {"y": np.array([1.0005, 2.1])})
    assert (compared, agreed) == (2, 1)
    assert shadow.compare({"y": a}, {"y": a[:, :1]})[1] == 0  # shapes that differ agree on nothing
