"""Residency of experiments, runs and run artifacts (issue 17): experiments pinned at creation, runs
inheriting the experiment's region or their data's, artifacts stored and downloaded only where
they may be held; every refusal a 403/409 with an audit entry (residency.refused)."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.core.errors import RegionMismatch, ResidencyError
from apps.core.models import AuditEntry, VaultBlob
from apps.experiments import services
from apps.experiments.models import Experiment, RunArtifact
from tests.conftest import api_client_for, page_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.PORTAL_REGION = "default"
    settings.PORTAL_REGIONS = ["uae-north"]


def refusals() -> list[dict]:
    return [
        e.additional_data for e in AuditEntry.objects.filter(additional_data__event="residency.refused").order_by("id")
    ]


def test_api_creates_a_pinned_experiment_and_refuses_unknown_regions(owner):
    client = api_client_for(owner)
    response = client.post("/api/v1/experiments/", {"name": "gulf", "region": "uae-north"}, format="json")
    assert response.status_code == 201 and response.json()["region"] == "uae-north"
    assert client.post("/api/v1/experiments/", {"name": "plain"}, format="json").json()["region"] == "default"
    response = client.post("/api/v1/experiments/", {"name": "moon", "region": "moon-1"}, format="json")
    assert response.status_code == 400 and "moon-1" in response.json()["region"][0]


def test_experiment_page_form_takes_a_region(owner):
    client = page_client_for(owner)
    assert ">uae-north<" in client.get("/experiments/").content.decode()
    response = client.post("/experiments/", {"name": "from-page", "region": "uae-north"})
    assert response.status_code == 302
    exp = Experiment.objects.get(name="from-page")
    assert exp.region == "uae-north"
    assert 'id="experiment-region">uae-north<' in client.get(response["Location"]).content.decode()


def test_runs_inherit_the_experiment_region_or_their_datas(owner):
    pinned = services.experiment_create(actor=owner, name="gulf", region="uae-north")
    plain = services.experiment_create(actor=owner, name="plain")
    assert services.run_create(experiment=pinned, actor=owner, name="a").region == "uae-north"
    assert services.run_create(experiment=plain, actor=owner, name="b").region == "default"
    assert services.run_create(experiment=plain, actor=owner, name="c", region="uae-north").region == "uae-north"
    run = services.run_create(experiment=pinned, actor=owner, name="d", region="uae-north")
    response = api_client_for(owner).get(f"/api/v1/runs/{run.pk}/")
    assert response.json()["region"] == "uae-north"


def test_a_run_of_another_regions_data_in_a_pinned_experiment_is_409_and_audited(owner, settings):
    settings.PORTAL_REGIONS = ["uae-north", "eu-west"]
    pinned = services.experiment_create(actor=owner, name="gulf", region="uae-north")
    with pytest.raises(RegionMismatch):
        services.run_create(experiment=pinned, actor=owner, name="x", region="eu-west")
    (entry,) = refusals()
    assert entry["region"] == "eu-west" and "uae-north" in entry["why"] and entry["action"] == "create a run"
    assert not pinned.runs.exists()


def test_artifacts_of_a_pinned_run_are_not_stored_in_another_region(owner):
    pinned = services.experiment_create(actor=owner, name="gulf", region="uae-north")
    run = services.run_create(experiment=pinned, actor=owner, name="a")
    blobs = VaultBlob.objects.count()
    with pytest.raises(ResidencyError):
        services.run_artifact_upload(run=run, actor=owner, src=io.BytesIO(b"secret"), size=6, path="m.bin")
    assert VaultBlob.objects.count() == blobs and not RunArtifact.objects.exists()
    response = api_client_for(owner).post(
        f"/api/v1/runs/{run.pk}/artifacts",
        {"file": SimpleUploadedFile("m.bin", b"secret"), "path": "m.bin"},
        format="multipart",
    )
    assert response.status_code == 403 and "uae-north" in response.json()["detail"]
    assert [e["action"] for e in refusals()] == ["store artifacts of", "store artifacts of"]


def test_run_artifacts_download_only_in_their_region(owner, settings):
    settings.PORTAL_REGION = "uae-north"
    pinned = services.experiment_create(actor=owner, name="gulf", region="uae-north")
    run = services.run_create(experiment=pinned, actor=owner, name="a")
    services.run_artifact_upload(run=run, actor=owner, src=io.BytesIO(b"weights"), size=7, path="m.bin")
    client = api_client_for(owner)
    url = f"/api/v1/runs/{run.pk}/artifacts/m.bin"
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"weights"
    settings.PORTAL_REGION = "default"
    response = client.get(url)
    assert response.status_code == 403 and refusals()[-1]["action"] == "download"
