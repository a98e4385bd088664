"""The version page shows the ONNX parity check a version was registered with, and catalog pages
show numbers, dates and sizes through the one formatting helper."""

from __future__ import annotations

import importlib
import io
import re

import pytest
from django.apps import apps as django_apps

from apps.catalog import services
from apps.catalog.models import ModelVersion
from apps.catalog.torch_export import version_register_from_torch
from apps.experiments.models import Experiment
from apps.training.models import TrainingJob
from tests.catalog.conftest import register
from tests.conftest import page_client_for as login

pytestmark = pytest.mark.django_db

ENGINE_SUMMARY = {  # what `OnnxExport.summary()` holds for a training job's export
    "exporter": "dynamo",
    "parity_max_abs_diff": 4.7683716e-06,
    "parity_threshold": 1.3e-4,
    "tolerance": 1e-4,
    "rtol": 1e-3,
    "batch_sizes_checked": [1, 3, 8],
    "opset": 18,
}


def _text(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def test_version_page_shows_onnx_parity_recorded_at_registration(owner, registered, onnx_bytes):
    version = register(registered, owner, onnx_bytes, onnx_parity=ENGINE_SUMMARY)
    assert version.onnx_parity["max_abs_diff"] == pytest.approx(4.7683716e-06)
    page = _text(login(owner).get(f"/models/credit-risk/versions/{version.version}/"))
    assert "ONNX parity" in page
    assert "4.77e-06 (limit 1e-4)" in page
    assert "batch sizes 1, 3, 8" in page


def test_version_page_says_when_no_parity_was_recorded(owner, version):
    page = _text(login(owner).get(f"/models/credit-risk/versions/{version.version}/"))
    assert "No parity check recorded" in page


def test_register_from_torch_records_parity(owner, example_input, torch_module):
    version = version_register_from_torch(
        model_name="torch-made", module=torch_module, example_input=example_input, actor=owner, state_dict=False
    )
    parity = version.onnx_parity
    assert 0 <= parity["max_abs_diff"] <= parity["threshold"] and parity["tolerance"] == 1e-4
    page = _text(login(owner).get(f"/models/torch-made/versions/{version.version}/"))
    assert "(limit 1e-4)" in page


def test_parity_is_immutable_and_validated(owner, registered, onnx_bytes, version):
    with pytest.raises(Exception, match="immutable"):
        version.onnx_parity = {"max_abs_diff": 0.0, "tolerance": 1e-4}
        version.save()
    with pytest.raises(Exception, match="max_abs_diff"):
        register(registered, owner, onnx_bytes, onnx_parity={"parity_max_abs_diff": "small", "tolerance": 1e-4})


def test_versions_registered_by_training_jobs_get_their_parity_backfilled(owner, version):
    """Versions trained before versions kept their parity: the job's export summary is copied."""
    experiment = Experiment.objects.create(name="exp", owner=owner)
    TrainingJob.objects.create(
        owner=owner,
        template="tabular_mlp",
        experiment=experiment,
        model_name="credit-risk",
        model_version=version,
        result={"onnx": ENGINE_SUMMARY},
    )
    migration = importlib.import_module("apps.catalog.migrations.0003_backfill_onnx_parity")
    migration.backfill_onnx_parity(django_apps, None)
    version.refresh_from_db()
    assert version.onnx_parity["tolerance"] == 1e-4
    page = _text(login(owner).get(f"/models/credit-risk/versions/{version.version}/"))
    assert "4.77e-06 (limit 1e-4)" in page


def test_catalog_pages_format_numbers_dates_and_sizes(owner, registered, onnx_bytes):
    version = register(registered, owner, onnx_bytes, metrics={"auc": 0.912345678901234, "epochs": 8.0})
    client = login(owner)
    when = re.compile(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2} UTC")
    size = f"{len(onnx_bytes) / 1024:.1f} KB".replace(".0 ", " ")
    version_page = _text(client.get(f"/models/credit-risk/versions/{version.version}/"))
    assert "0.9123" in version_page and "0.912346" not in version_page and "8.000000" not in version_page
    assert f"ONNX ({size})" in version_page and when.search(version_page)
    model_page = _text(client.get("/models/credit-risk/"))
    assert "auc=0.9123" in model_page and "epochs=8 " in model_page and "0.9123457" not in model_page
    assert size in model_page and when.search(model_page)
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", model_page) is None
    list_page = _text(client.get("/models/"))
    assert when.search(list_page) and re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", list_page) is None


def test_register_keeps_parity_through_the_service(owner, registered, onnx_bytes):
    version = services.version_register(
        model=registered,
        actor=owner,
        artifact=io.BytesIO(onnx_bytes),
        artifact_size=len(onnx_bytes),
        onnx_parity={"max_abs_diff": 2e-7, "tolerance": 1e-5},
    )
    stored = ModelVersion.objects.get(pk=version.pk).onnx_parity
    assert stored["max_abs_diff"] == 2e-7 and stored["threshold"] == 1e-5
