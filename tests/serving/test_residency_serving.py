"""Residency of serving (issue 17): a version pinned to a region is served only on endpoints of that
region (routes and canaries), and scored only by jobs of that region on workers there. Each refusal
is a 409/403 with an audit entry `residency.refused`; unpinned versions go anywhere."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from apps.catalog import services as catalog
from apps.core.models import AuditEntry
from apps.serving.inference import runtime
from apps.serving.models import Canary, Endpoint, ScoringJob
from apps.serving.scoring import runner
from tests.conftest import api_client_for
from tests.serving.conftest import FEATURES, make_endpoint, register, rows, version_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.PORTAL_REGION = "uae-north"
    settings.PORTAL_REGIONS = ["uae-north"]
    runtime.SESSIONS.clear()


@pytest.fixture
def gulf(owner, mlp_onnx):
    """Model `gulf-score` pinned to uae-north, with v1 and v2 (registered in that region's portal)."""
    model = catalog.model_create(actor=owner, name="gulf-score", region="uae-north")
    register(model, owner, mlp_onnx[0])
    register(model, owner, mlp_onnx[1])
    return model


def refusals() -> list[dict]:
    return [
        e.additional_data for e in AuditEntry.objects.filter(additional_data__event="residency.refused").order_by("id")
    ]


def endpoint_body(name: str, region: str, version: int = 1) -> dict:
    route = {"name": "main", "model": "gulf-score", "version": version, "weight": 100, "mode": "live"}
    return {"name": name, "region": region, "routes": [route]}


def test_a_pinned_version_is_served_only_on_an_endpoint_of_its_region(owner, gulf):
    client = api_client_for(owner)
    response = client.post("/api/v1/endpoints/", endpoint_body("elsewhere", "default"), format="json")
    assert response.status_code == 409 and "uae-north" in response.json()["detail"]
    assert not Endpoint.objects.filter(name="elsewhere").exists()
    (entry,) = refusals()
    assert entry["region"] == "uae-north" and entry["action"] == "be served" and "'default'" in entry["why"]
    response = client.post("/api/v1/endpoints/", endpoint_body("gulf", "uae-north"), format="json")
    assert response.status_code == 201, response.content


def test_an_alias_route_is_checked_on_the_version_it_points_at(owner, gulf):
    catalog.alias_move(model=gulf, alias="staging", version=version_of(gulf, 1), actor=owner)
    body = endpoint_body("by-alias", "default")
    body["routes"][0] = {"name": "main", "model": "gulf-score", "alias": "staging", "weight": 100, "mode": "live"}
    assert api_client_for(owner).post("/api/v1/endpoints/", body, format="json").status_code == 409


def test_routes_changed_to_a_pinned_version_of_another_region_are_refused(owner, gulf, scorer):
    endpoint = make_endpoint(owner, "plain", [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}])
    response = api_client_for(owner).patch(
        "/api/v1/endpoints/plain/", {"routes": endpoint_body("plain", "default")["routes"]}, format="json"
    )
    assert response.status_code == 409 and len(refusals()) == 1
    assert endpoint.routes.get().model == scorer


def test_unpinned_versions_serve_on_endpoints_of_any_region(owner, scorer):
    route = {"name": "main", "model": "fraud-score", "version": 1, "weight": 100, "mode": "live"}
    body = {"name": "anywhere", "region": "uae-north", "routes": [route]}
    assert api_client_for(owner).post("/api/v1/endpoints/", body, format="json").status_code == 201
    assert refusals() == []


def test_a_canary_of_a_pinned_version_on_an_endpoint_of_another_region_is_refused(owner, gulf, settings):
    # An endpoint made before pinning rules existed (rows written directly) still cannot ramp to v2.
    endpoint = make_endpoint(owner, "legacy", [{"name": "main", "model": gulf, "version": version_of(gulf, 1)}])
    body = {"version": 2, "steps": [5, 100], "step_interval_s": 60}
    response = api_client_for(owner).post(f"/api/v1/endpoints/{endpoint.name}/canary", body, format="json")
    assert response.status_code == 409 and refusals()[0]["action"] == "be served"
    assert not Canary.objects.exists()


def csv_upload(n: int = 5) -> io.BytesIO:
    data = np.asarray(rows(n), dtype=np.float32)
    table = pa.table({f"f{i}": pa.array(data[:, i], pa.float32()) for i in range(FEATURES)})
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    buffer.seek(0)
    buffer.name = "rows.csv"
    return buffer


def test_scoring_a_pinned_version_runs_in_its_region_and_nowhere_else(owner, gulf, settings):
    client = api_client_for(owner)
    refused = client.post(
        "/api/v1/scoring/jobs/",
        {"model": "gulf-score", "version": 1, "region": "eu-west", "file": csv_upload()},
        format="multipart",
    )
    assert refused.status_code == 409 and refusals()[0]["action"] == "be scored"
    response = client.post(
        "/api/v1/scoring/jobs/", {"model": "gulf-score", "version": 1, "file": csv_upload()}, format="multipart"
    )
    assert response.status_code == 202, response.content
    job = ScoringJob.objects.get(pk=response.json()["id"])
    assert job.region == "uae-north" and job.queue == "cpu.uae-north"

    settings.PORTAL_REGION = "default"  # a worker of another region picks it up
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert "uae-north" in job.error and refusals()[-1]["action"] == "score with"
    assert not job.parts
