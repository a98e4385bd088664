"""Residency of registered models and their versions (issue 17): a region chosen at creation from the
configured regions, versions pinned to the region of the run they were built from, and every
cross-region store, registration and download refused (403/409) and audited as residency.refused."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError

from apps.catalog import services
from apps.core.errors import RegionMismatch, ResidencyError
from apps.core.models import AuditEntry, VaultBlob
from apps.experiments import services as experiments
from tests.catalog.conftest import register
from tests.conftest import api_client_for, page_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.PORTAL_REGION = "default"
    settings.PORTAL_REGIONS = ["uae-north", "eu-west"]


def refusals() -> list[dict]:
    return [
        e.additional_data for e in AuditEntry.objects.filter(additional_data__event="residency.refused").order_by("id")
    ]


def pinned_run(owner, region="uae-north"):
    exp = experiments.experiment_create(actor=owner, name=f"exp-{region}", region=region)
    return experiments.run_create(experiment=exp, actor=owner, name="r1", source="script")


def test_api_creates_a_model_in_a_configured_region_and_shows_it(owner):
    client = api_client_for(owner)
    response = client.post("/api/v1/models/", {"name": "pinned", "region": "uae-north"}, format="json")
    assert response.status_code == 201 and response.json()["region"] == "uae-north"
    assert client.get("/api/v1/models/pinned/").json()["region"] == "uae-north"
    listed = {m["name"]: m["region"] for m in client.get("/api/v1/models/").json()["results"]}
    assert listed == {"pinned": "uae-north"}
    assert client.post("/api/v1/models/", {"name": "plain"}, format="json").json()["region"] == "default"


def test_an_unconfigured_region_is_a_field_error_naming_the_choices(owner):
    response = api_client_for(owner).post("/api/v1/models/", {"name": "x1", "region": "mars-1"}, format="json")
    assert response.status_code == 400
    assert "uae-north" in response.json()["region"][0] and "PORTAL_REGIONS" in response.json()["region"][0]
    with pytest.raises(ValidationError):
        services.model_create(actor=owner, name="x2", region="Not A Region")


def test_region_cannot_change_after_creation(owner):
    model = services.model_create(actor=owner, name="fixed", region="eu-west")
    response = api_client_for(owner).patch("/api/v1/models/fixed/", {"region": "default"}, format="json")
    assert response.status_code == 400
    model.refresh_from_db()
    assert model.region == "eu-west"


def test_page_form_offers_the_regions_and_creates_a_pinned_model(owner):
    client = page_client_for(owner)
    page = client.get("/models/new/").content.decode()
    assert 'name="region"' in page and ">uae-north<" in page and ">eu-west<" in page
    response = client.post("/models/new/", {"name": "from-page", "region": "eu-west"})
    assert response.status_code == 302
    detail = client.get("/models/from-page/").content.decode()
    assert 'id="model-region">eu-west<' in detail


def test_this_portal_refuses_to_store_artifacts_of_another_region(owner, onnx_bytes):
    model = services.model_create(actor=owner, name="abroad", region="uae-north")
    blobs = VaultBlob.objects.count()
    with pytest.raises(ResidencyError, match="uae-north"):
        register(model, owner, onnx_bytes)
    assert VaultBlob.objects.count() == blobs and not model.versions.exists()
    (entry,) = refusals()
    assert entry["region"] == "uae-north" and entry["where"] == "default" and "store" in entry["why"]
    assert entry["what"] == f"catalog.registeredmodel:{model.pk}"


def test_api_upload_of_a_pinned_model_elsewhere_is_403(owner, onnx_bytes):
    services.model_create(actor=owner, name="abroad", region="eu-west")
    response = api_client_for(owner).post(
        "/api/v1/models/abroad/versions/", {"artifact": io.BytesIO(onnx_bytes)}, format="multipart"
    )
    assert response.status_code == 403 and "eu-west" in response.json()["detail"]
    assert len(refusals()) == 1


def test_a_version_built_from_a_pinned_run_takes_its_region(owner, onnx_bytes, settings):
    settings.PORTAL_REGION = "uae-north"
    run = pinned_run(owner)
    model = services.model_create(actor=owner, name="unpinned")
    version = register(model, owner, onnx_bytes, lineage={"run_id": str(run.pk)})
    assert run.region == "uae-north" and version.region == "uae-north" and model.region == "default"
    explicit = register(model, owner, onnx_bytes, region="uae-north")
    assert explicit.region == "uae-north"
    assert register(model, owner, onnx_bytes).region == "default"


def test_registering_across_regions_is_409_and_audited(owner, onnx_bytes, settings):
    settings.PORTAL_REGION = "uae-north"
    run = pinned_run(owner)
    model = services.model_create(actor=owner, name="eu-model", region="eu-west")
    with pytest.raises(RegionMismatch):
        register(model, owner, onnx_bytes, lineage={"run_id": str(run.pk)})
    (entry,) = refusals()
    assert entry["region"] == "uae-north" and "eu-west" in entry["why"]
    assert not model.versions.exists()


def test_download_of_a_pinned_version_outside_its_region_is_refused(owner, onnx_bytes, settings):
    settings.PORTAL_REGION = "uae-north"
    model = services.model_create(actor=owner, name="gulf", region="uae-north")
    version = register(model, owner, onnx_bytes)
    client = api_client_for(owner)
    url = "/api/v1/models/gulf/versions/1/artifact"
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == onnx_bytes

    settings.PORTAL_REGION = "eu-west"
    response = client.get(url)
    assert response.status_code == 403 and "uae-north" in response.json()["detail"]
    with pytest.raises(ResidencyError):
        services.artifact_open(version=version, actor=owner)
    assert [e["action"] for e in refusals()] == ["download", "download"]
    assert AuditEntry.objects.filter(additional_data__event="artifact.download", object_pk=str(version.pk)).count() == 1


def test_unpinned_versions_download_in_any_region(owner, onnx_bytes, settings):
    model = services.model_create(actor=owner, name="anywhere")
    register(model, owner, onnx_bytes)
    settings.PORTAL_REGION = "eu-west"
    response = api_client_for(owner).get("/api/v1/models/anywhere/versions/1/artifact")
    assert response.status_code == 200 and refusals() == []
