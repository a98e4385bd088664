"""The MLflow-compatible API's model-registry calls: a registered model answers as the catalog's
model does (viewers read, editors and the owner change, strangers get 404 RESOURCE_DOES_NOT_EXIST,
no credentials 401, a token without the scope 403). A new version also needs view access to the
run whose artifact it reads: the experiment is shared as the model is.

The protected-alias answer (403 PERMISSION_DENIED naming the promotion flow) is in
tests/mlflow_api/test_registry.py."""

from __future__ import annotations

import io

from tests.access.matrix import AccessMatrix, api_changes, api_collection, api_reads
from tests.access.objects import onnx_bytes

M = "/api/2.0/mlflow"
NAME = "name={name}"


def registered(owner, team) -> dict:
    """A run that logged model/model.onnx, the model registered from it (version 1), alias staging."""
    from apps.catalog import selectors as catalog
    from apps.catalog import services as catalog_services
    from apps.experiments import services

    experiment = services.experiment_create(name="mlflow-registry-access", actor=owner)
    run = services.run_create(experiment=experiment, actor=owner, name="run-1", source="script")
    data = onnx_bytes()
    services.run_artifact_upload(run=run, actor=owner, src=io.BytesIO(data), size=len(data), path="model/model.onnx")
    model = catalog_services.model_create(actor=owner, name="mlflow-access-model")
    catalog_services.version_register(
        model=model, actor=owner, artifact=io.BytesIO(data), artifact_size=len(data), lineage={"run_id": str(run.pk)}
    )
    version = catalog.version_for(owner, model.name, 1)
    catalog_services.alias_move(model=model, alias="staging", version=version, actor=owner)
    return {"share": [model, experiment], "name": model.name, "run": run.pk}


def on_model(**fields):
    return lambda world: {"name": world.params["name"], **fields}


class TestMlflowRegistryAccess(AccessMatrix):
    make = staticmethod(registered)
    rows = {
        ("POST", f"{M}/registered-models/create"): api_collection(body={"name": "fresh-mlflow-model"}),
        ("GET", f"{M}/registered-models/get?{NAME}"): api_reads(),
        ("GET", f"{M}/registered-models/search"): api_collection(),
        ("POST", f"{M}/model-versions/create"): api_changes(
            body=lambda w: {"name": w.params["name"], "source": f"runs:/{w.params['run']}/model"}
        ),
        ("GET", f"{M}/model-versions/get?{NAME}&version=1"): api_reads(),
        ("GET", f"{M}/model-versions/get-download-uri?{NAME}&version=1"): api_reads(),
        ("GET", f"{M}/model-versions/search"): api_collection(),
        ("POST", f"{M}/registered-models/alias"): api_changes(body=on_model(alias="staging", version="1")),
        ("DELETE", f"{M}/registered-models/alias"): api_changes(body=on_model(alias="staging")),
        ("GET", f"{M}/registered-models/alias?{NAME}&alias=staging"): api_reads(),
    }
