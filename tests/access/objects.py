"""Small, valid objects for the access matrix: built once per matrix class, without torch."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np

T0 = datetime(2024, 5, 1, tzinfo=UTC)
TINY = {"epochs": 1, "batch_size": 256, "hidden_units": 4, "layers": 1, "patience": 0}
TEMPLATE = "tabular-mlp-classifier"


def onnx_bytes() -> bytes:
    """y = x @ W: a valid six-in, three-out ONNX model made with onnx.helper (no torch export)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((6, 3), dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="access-matrix")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    return save({"W": np.ones((6, 3), dtype=np.float32)})


def upload(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def catalog(owner, team) -> dict:
    """A model with version 1 (ONNX and weights) and the alias `staging` on it."""
    from apps.catalog import services

    model = services.model_create(actor=owner, name="credit-risk", description="Scores loans", tags=["tabular"])
    onnx, weights = onnx_bytes(), safetensors_bytes()
    services.version_register(
        model=model,
        actor=owner,
        artifact=io.BytesIO(onnx),
        artifact_size=len(onnx),
        state_dict=io.BytesIO(weights),
        state_dict_size=len(weights),
        metrics={"auc": 0.9},
    )
    version = model.versions.get(version=1)
    services.alias_move(model=model, alias="staging", version=version, actor=owner)
    return {"obj": model, "name": model.name, "version": 1, "alias": "staging", "onnx": onnx}


def feature_rows(n_keys: int = 2) -> list[dict]:
    stamp = (T0 + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return [
        {"customer_id": k, "event_timestamp": stamp, "balance": 10.0 * k, "email": f"c{k}@example.com"}
        for k in range(n_keys)
    ]


FEATURES = [{"name": "balance", "dtype": "float64"}, {"name": "email", "dtype": "string", "pii": True}]


def features(owner, team) -> dict:
    """An entity, a batch view with rows, a push view and a training set built from the batch view."""
    from apps.features import services, training_sets

    entity = services.entity_create(actor=owner, name="customer", join_keys=[{"name": "customer_id", "dtype": "int64"}])
    view = services.feature_view_create(
        actor=owner, name="customer-stats", entity=entity, features=FEATURES, retention_days=3650
    )
    services.feature_view_ingest(view=view, actor=owner, data=feature_rows())
    pushed = services.feature_view_create(
        actor=owner, name="customer-live", entity=entity, features=FEATURES, source="push"
    )
    training_set = training_sets.training_set_create(
        actor=owner,
        name="loans",
        features=["customer-stats:balance"],
        entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}],
    )
    return {
        "share": [entity, view, pushed, training_set],
        "entity": entity.name,
        "view": view.name,
        "view_pk": view.pk,
        "push_view": pushed.name,
        "ts": training_set.pk,
    }


def experiments(owner, team) -> dict:
    """An experiment with two runs (compare needs two), the first with a metric and an artifact."""
    from apps.experiments import services

    experiment = services.experiment_create(name="churn", actor=owner)
    run = services.run_create(experiment=experiment, actor=owner, name="run-1", source="script")
    services.run_log_batch(run=run, actor=owner, metrics=[{"key": "loss", "step": 0, "value": 0.5}])
    other = services.run_create(experiment=experiment, actor=owner, name="run-2", source="script")
    data = b"hello"
    services.run_artifact_upload(run=run, actor=owner, src=io.BytesIO(data), size=len(data), path="notes.txt")
    return {"share": [experiment], "experiment": experiment.pk, "run": run.pk, "other_run": other.pk}


def training(owner, team) -> dict:
    """A queued job and a grid sweep (nothing runs: their dispatch waits for a commit that never comes)."""
    from apps.training import services

    job = services.job_launch(actor=owner, template=TEMPLATE, params=dict(TINY), data={"dataset": "wine"})
    sweep = services.sweep_create(
        actor=owner,
        name="s1",
        template=TEMPLATE,
        method="grid",
        space={"hidden_units": {"values": [4, 8]}},
        params={k: v for k, v in TINY.items() if k != "hidden_units"},
        parallelism=1,
        data={"dataset": "wine"},
    )
    return {"share": [job, sweep], "job": job.pk, "sweep": sweep.pk}
