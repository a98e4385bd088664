"""Serving endpoints: list, create, one endpoint, traffic, sharing (API) and their pages."""

from __future__ import annotations

import io

from tests.access import objects
from tests.access.matrix import (
    AccessMatrix,
    api_changes,
    api_collection,
    api_reads,
    api_sharing,
    page_changes,
    page_collection,
    page_reads,
)

E = "/api/v1/endpoints/{name}"
P = "/endpoints/{name}"
MODEL = "endpoint-matrix"
ROUTE = {"name": "main", "model": MODEL, "version": 1, "weight": 100, "mode": "live"}
SHARE = {"user": "bystander", "role": "viewer"}
UNSHARE = {"user": "viewer"}


def endpoints(owner, team) -> dict:
    """The tiny six-in model and an endpoint on it, both shared with the personas."""
    from apps.catalog import services as catalog
    from apps.serving.inference import runtime
    from apps.serving.services.endpoints import endpoint_create

    runtime.SESSIONS.clear()  # version ids repeat across test databases
    model = catalog.model_create(actor=owner, name=MODEL, description="")
    data = objects.onnx_bytes()
    catalog.version_register(model=model, actor=owner, artifact=io.BytesIO(data), artifact_size=len(data))
    endpoint = endpoint_create(actor=owner, name="matrix-endpoint", routes=[ROUTE])
    return {"share": [model, endpoint], "name": endpoint.name}


def page_routes(**fields) -> dict:
    base = {"routes-TOTAL_FORMS": "1", "routes-INITIAL_FORMS": "0", "routes-MAX_NUM_FORMS": "20"}
    return base | {f"routes-0-{k}": v for k, v in {**ROUTE, "version": "1", "alias": ""}.items()} | fields


def page_create(world) -> dict:
    return page_routes(name="fresh-endpoint", description="", region="default", log_sample_rate="0.1")


def page_edit(world) -> dict:
    return page_routes(description="changed", log_sample_rate="0.5")


class TestEndpointApiAccess(AccessMatrix):
    make = staticmethod(endpoints)
    rows = {
        ("GET", "/api/v1/endpoints/"): api_collection(),
        # a stranger cannot view the model: a field error that does not say whether it exists
        ("POST", "/api/v1/endpoints/"): api_collection(
            201, body={"name": "fresh-endpoint", "routes": [ROUTE]}, stranger=400
        ),  # fmt: skip
        ("GET", f"{E}/"): api_reads(),
        ("PATCH", f"{E}/"): api_changes(body={"description": "changed", "routes": [{**ROUTE, "weight": 100}]}),
        ("GET", f"{E}/traffic"): api_reads(),
        ("GET", f"{E}/sharing"): api_sharing(),
        ("POST", f"{E}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{E}/sharing"): api_sharing(204, body=UNSHARE),
    }


class TestEndpointPageAccess(AccessMatrix):
    make = staticmethod(endpoints)
    rows = {
        ("GET", "/endpoints/"): page_collection(),
        ("GET", "/endpoints/new/"): page_collection(),
        # the stranger's route names a model it cannot see: the form comes back with the error
        ("POST", "/endpoints/new/"): page_collection(302, body=page_create, stranger=400),
        ("GET", f"{P}/"): page_reads(),
        ("GET", f"{P}/edit/"): page_changes(200),
        ("POST", f"{P}/edit/"): page_changes(body=page_edit),
        ("POST", f"{P}/share/"): page_changes(body=SHARE),
        ("POST", f"{P}/unshare/"): page_changes(body=UNSHARE),
        ("GET", f"{P}/try/"): page_reads(),
        ("POST", f"{P}/try/"): page_reads(body={"inputs": "[[1, 2, 3, 4, 5, 6]]"}),
    }
