"""End to end: real predictions through `predict_call`, a canary version that fails inside ONNX
Runtime on every real request, the traffic windows written by the logbook, and the evaluator
rolling the canary back by itself."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from apps.core.audit import system_user
from apps.core.models import AuditEntry
from apps.serving.inference import cache, logbook, runtime, shadow
from apps.serving.inference.predict import predict_call
from apps.serving.models import Canary, Route, TrafficWindow
from apps.serving.services.canaries import canaries_evaluate_due, canary_start
from tests.serving.conftest import FEATURES, make_endpoint, register, rows, version_of


def failing_onnx() -> bytes:
    """[batch, 30] -> [batch, 2] that loads and warms (on zeros) but fails at run time on any
    non-zero row: it reshapes its input to [4, -1] when the input is not all zeros, and 30 values
    do not split into 4 rows, so ONNX Runtime raises inside Reshape."""
    nodes = [
        helper.make_node("Abs", ["input"], ["abs"]),
        helper.make_node("ReduceSum", ["abs"], ["total"], keepdims=0),
        helper.make_node("Sign", ["total"], ["nonzero"]),
        helper.make_node("Mul", ["nonzero", "three"], ["scaled"]),
        helper.make_node("Add", ["scaled", "one"], ["rows_f"]),
        helper.make_node("Cast", ["rows_f"], ["rows_i"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", ["rows_i", "axis0"], ["rows_1d"]),
        helper.make_node("Concat", ["rows_1d", "minus_one"], ["shape"], axis=0),
        helper.make_node("Reshape", ["input", "shape"], ["reshaped"]),
        helper.make_node("MatMul", ["reshaped", "W"], ["output"]),
    ]
    initializers = [
        numpy_helper.from_array(np.float32(3.0), name="three"),
        numpy_helper.from_array(np.float32(1.0), name="one"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), name="axis0"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), name="minus_one"),
        numpy_helper.from_array(np.ones((FEATURES, 2), dtype=np.float32), name="W"),
    ]
    graph = helper.make_graph(
        nodes, "fails-at-run-time",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])],
        initializer=initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="canary-e2e")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(autouse=True)
def _quiet_background():
    """No background writers: the test flushes the logbook itself, in its own transaction."""
    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    runtime.SESSIONS.clear()  # version ids repeat across test databases
    logbook.discard()
    yield
    logbook.discard()
    cache.STATE.reset()
    runtime.SESSIONS.clear()


def predict(user, i: int) -> tuple[int, dict]:
    body = json.dumps({"inputs": rows(1, seed=i), "key": f"caller-{i}"}).encode()
    status, answer, _ = predict_call(user=user, token=None, endpoint_name="live-canary", body=body)
    return status, answer


@pytest.mark.django_db
def test_a_canary_failing_at_run_time_rolls_back_by_itself(owner, scorer):
    broken = register(scorer, owner, failing_onnx())
    endpoint = make_endpoint(
        owner, "live-canary", [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}]
    )
    canary = canary_start(
        actor=owner, endpoint=endpoint, version=broken.version, steps=[50, 100], step_interval_s=10,
        guards={"error_rate": 0.02, "min_samples": 20},
    )  # fmt: skip
    answers = [predict(owner, i) for i in range(120)]
    by_route: dict[str, list[int]] = {}
    for status, answer in answers:
        by_route.setdefault(answer.get("route", "failed"), []).append(status)
    assert set(by_route["main"]) == {200}
    failed = by_route.get("failed", [])
    assert failed and set(failed) == {500}  # the canary answered none: each failed inside ONNX Runtime
    logbook.flush()
    windows = {w.route: w for w in TrafficWindow.objects.filter(endpoint=endpoint)}
    assert windows["canary"].errors == windows["canary"].requests == len(failed)
    assert windows["main"].errors == 0

    canary.refresh_from_db()
    assert canaries_evaluate_due(actor=system_user(), now=canary.next_evaluation_at) == {canary.pk: "rolled_back"}
    canary.refresh_from_db()
    assert canary.state == Canary.State.ROLLED_BACK
    assert f"error rate 100.0 % against 0.0 % on the baseline (allowed +2.0 points) over {len(failed)} and " in (
        canary.reason
    )
    assert AuditEntry.objects.filter(additional_data__event="canary.rollback").exists()
    assert {r.name: r.weight for r in Route.objects.filter(endpoint=endpoint)} == {"main": 100, "canary": 0}
    assert {predict(owner, 1000 + i)[0] for i in range(30)} == {200}  # the traffic is back on the baseline


@pytest.mark.django_db
def test_real_prediction_ids_take_feedback_and_feed_the_ab_report(owner, scorer):
    from tests.conftest import api_client_for

    make_endpoint(
        owner, "live-canary", [
            {"name": "a", "model": scorer, "version": version_of(scorer, 1), "weight": 50},
            {"name": "b", "model": scorer, "version": version_of(scorer, 2), "weight": 50},
        ],
    )  # fmt: skip
    answers = [predict(owner, i)[1] for i in range(200)]
    assert {a["route"] for a in answers} == {"a", "b"}
    body = [
        {"prediction_id": a["prediction_id"], "outcome": a["route"] == "b" or i % 3 == 0} for i, a in enumerate(answers)
    ]
    client = api_client_for(owner)
    recorded = client.post("/api/v1/endpoints/live-canary/feedback", body, format="json")
    assert recorded.status_code == 200 and recorded.json()["recorded"] == 200
    report = client.get("/api/v1/endpoints/live-canary/ab-report").json()
    rates = {r["route"]: r["rate"] for r in report["routes"]}
    assert rates["b"] == 1.0 and 0.2 < rates["a"] < 0.5
    assert report["p_value"] < 0.001 and "significant at 5 %" in report["verdict"]
