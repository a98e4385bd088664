"""Monitoring API: drift reports, alerts, a version's reference profile and an endpoint's
monitoring. Reports and alerts take their rights from their endpoint (viewers read, editors act);
the profile from the model (viewers read, editors rebuild)."""

from __future__ import annotations

import datetime as dt
import io

from django.utils import timezone

from tests.access import objects
from tests.access.matrix import AccessMatrix, api_changes, api_collection, api_reads

MODEL = "monitoring-matrix"
ROUTE = {"name": "main", "model": MODEL, "version": 1, "weight": 100, "mode": "live"}
NOW = timezone.now()
WINDOW = {"start": (NOW - dt.timedelta(hours=1)).isoformat(), "end": NOW.isoformat()}


def world(owner, team) -> dict:
    from apps.catalog import services as catalog
    from apps.monitoring.models import DriftReport, ReferenceProfile
    from apps.monitoring.services.alerts import alert_raise
    from apps.serving.inference import runtime
    from apps.serving.services.endpoints import endpoint_create

    runtime.SESSIONS.clear()
    model = catalog.model_create(actor=owner, name=MODEL, description="")
    data = objects.onnx_bytes()
    version = catalog.version_register(model=model, actor=owner, artifact=io.BytesIO(data), artifact_size=len(data))
    endpoint = endpoint_create(actor=owner, name="monitoring-endpoint", routes=[ROUTE])
    report = DriftReport.objects.create(
        subject="endpoint", endpoint=endpoint, route="main", version=version, start=NOW - dt.timedelta(hours=1),
        end=NOW, state="succeeded", status="ok", quality_status="ok",
    )  # fmt: skip
    alert, _ = alert_raise(kind="drift", dedup_key="matrix", title="Drift on monitoring-endpoint", endpoint=endpoint)
    ReferenceProfile.objects.create(version=version, state="ready", source="upload", rows=10, data={"features": {}})
    return {"share": [model, endpoint], "name": endpoint.name, "report": report.pk, "alert": alert.pk}


R = "/api/v1/monitoring/drift-reports/"
A = "/api/v1/monitoring/alerts/{alert}/"
PROFILE = f"/api/v1/models/{MODEL}/versions/1/profile"
MONITORING = "/api/v1/endpoints/{name}/monitoring"


class TestMonitoringApiAccess(AccessMatrix):
    make = staticmethod(world)
    rows = {
        ("GET", R): api_collection(),
        # anyone who may view the endpoint may check it; a stranger's endpoint is not found
        ("POST", R): api_collection(202, body=lambda w: {"endpoint": w.params["name"], **WINDOW}, stranger=404),
        ("GET", R + "{report}/"): api_reads(auditor=200),
        ("GET", "/api/v1/monitoring/alerts/"): api_collection(),
        ("GET", A): api_reads(auditor=200),
        ("PATCH", A): api_changes(body={"assignee": None}, auditor=403),
        ("POST", A + "acknowledge"): api_changes(auditor=403),
        ("POST", A + "resolve"): api_changes(auditor=403),
        ("GET", PROFILE): api_reads(),
        ("POST", PROFILE): api_changes(202),
        ("GET", MONITORING): api_reads(),
        ("PATCH", MONITORING): api_changes(body={"window_minutes": 30}),
    }
