"""Canaries, feedback and A/B reports (API and pages).

Two endpoints on a tiny six-in model: `canary-idle` (v1 on route main: a canary can start) and
`canary-run` (a canary of v2 running on it: it can be aborted, and GET shows it)."""

from __future__ import annotations

import io
import time

from tests.access import objects
from tests.access.matrix import AccessMatrix, api_changes, api_reads, page_changes, page_reads

MODEL = "canary-matrix"
START = {"version": 2, "steps": [10, 100], "step_interval_s": 60, "guards": {"error_rate": 0.05}}
FORM = {"version": "2", "steps": "10, 100", "step_interval_s": "60", "error_rate_points": "5", "min_samples": "100"}


def _prediction_id(endpoint, route) -> str:
    from apps.serving.ids import new_prediction_id

    return new_prediction_id(endpoint.pk, route.pk, route.version_id, int(time.time() * 1000))


def canaries(owner, team) -> dict:
    from apps.catalog import services as catalog
    from apps.core.permissions import grant_owner
    from apps.serving.models import Endpoint, Route
    from apps.serving.services.canaries import canary_start

    model = catalog.model_create(actor=owner, name=MODEL, description="")
    data = objects.onnx_bytes()
    versions = [
        catalog.version_register(model=model, actor=owner, artifact=io.BytesIO(data), artifact_size=len(data))
        for _ in range(2)
    ]
    made = {}
    for name in ("canary-idle", "canary-run"):
        endpoint = Endpoint.objects.create(owner=owner, name=name)
        grant_owner(endpoint)
        made[name] = (endpoint, Route.objects.create(endpoint=endpoint, name="main", model=model, version=versions[0]))
    run, route = made["canary-run"]
    canary_start(actor=owner, endpoint=run, **START)
    return {
        "share": [model, made["canary-idle"][0], run],
        "idle": "canary-idle",
        "run": "canary-run",
        "pid": _prediction_id(run, route),
    }


def feedback_body(world) -> dict:
    return {"prediction_id": world.params["pid"], "outcome": 1}


E = "/api/v1/endpoints"


class TestCanaryApiAccess(AccessMatrix):
    make = staticmethod(canaries)
    rows = {
        ("GET", E + "/{run}/canary"): api_reads(),
        ("POST", E + "/{idle}/canary"): api_changes(201, body=START),
        ("POST", E + "/{run}/canary/abort"): api_changes(),
        # viewers may send outcomes (they may predict); a token needs `predict` naming it or `write`
        ("POST", E + "/{run}/feedback"): api_reads(body=feedback_body, no_scope_token=403),
        ("GET", E + "/{run}/ab-report"): api_reads(),
    }


class TestCanaryPageAccess(AccessMatrix):
    make = staticmethod(canaries)
    rows = {
        ("GET", "/endpoints/{run}/canary/"): page_reads(),
        ("POST", "/endpoints/{idle}/canary/start/"): page_changes(body=FORM),
        ("POST", "/endpoints/{run}/canary/abort/"): page_changes(),
        ("GET", "/endpoints/{run}/ab/"): page_reads(),
    }
