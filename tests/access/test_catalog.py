"""Catalog: models, versions, aliases, card, downloads, sharing (API and pages)."""

from __future__ import annotations

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

M = "/api/v1/models/{name}"
V = "/api/v1/models/{name}/versions/{version}"
SHARE = {"user": "bystander", "role": "viewer"}
UNSHARE = {"user": "viewer"}
CARD = {"intended_use": "Scoring consumer loan applications in the EU."}


def version_upload(world):
    return {"artifact": objects.upload("model.onnx", world.params["onnx"]), "description": "v2"}


def page_version_upload(world):
    return {"artifact": objects.upload("model.onnx", world.params["onnx"]), "description": "v2", "framework": ""}


class TestCatalogApiAccess(AccessMatrix):
    make = staticmethod(objects.catalog)
    rows = {
        ("GET", "/api/v1/models/"): api_collection(),
        ("POST", "/api/v1/models/"): api_collection(201, body={"name": "fresh-model"}),
        ("GET", f"{M}/"): api_reads(),
        ("PATCH", f"{M}/"): api_changes(body={"description": "changed"}),
        # DELETE archives; that is the owner's delete right (editors change, they do not archive)
        ("DELETE", f"{M}/"): api_changes(204, editor=403),
        ("GET", f"{M}/card"): api_reads(),
        ("PATCH", f"{M}/card"): api_changes(body=CARD),
        ("PUT", f"{M}/card"): api_changes(body=CARD),
        ("GET", f"{M}/sharing"): api_sharing(),
        ("POST", f"{M}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{M}/sharing"): api_sharing(204, body=UNSHARE),
        ("GET", f"{M}/versions/"): api_reads(),
        ("POST", f"{M}/versions/"): api_changes(201, body=version_upload, format="multipart"),
        ("GET", f"{V}/"): api_reads(),
        ("PATCH", f"{V}/"): api_changes(body={"description": "better"}),
        ("GET", f"{V}/artifact"): api_reads(),
        ("GET", f"{V}/state-dict"): api_reads(),
        ("GET", f"{M}/aliases/"): api_reads(),
        ("GET", f"{M}/aliases/{{alias}}"): api_reads(),
        ("PUT", f"{M}/aliases/{{alias}}"): api_changes(body={"version": 1}),
        ("PATCH", f"{M}/aliases/{{alias}}"): api_changes(body={"protected": True}),
        ("DELETE", f"{M}/aliases/{{alias}}"): api_changes(204),
    }


class TestCatalogPageAccess(AccessMatrix):
    make = staticmethod(objects.catalog)
    rows = {
        ("GET", "/models/"): page_collection(),
        ("GET", "/models/new/"): page_collection(),
        ("POST", "/models/new/"): page_collection(302, body={"name": "fresh-model", "description": "", "tags": ""}),
        ("GET", "/models/{name}/"): page_reads(),
        ("GET", "/models/{name}/edit/"): page_changes(200),
        ("POST", "/models/{name}/edit/"): page_changes(body={"description": "changed", "tags": "a"}),
        ("GET", "/models/{name}/card/"): page_changes(200),
        ("POST", "/models/{name}/card/"): page_changes(body=CARD),
        ("POST", "/models/{name}/share/"): page_changes(body=SHARE),
        ("POST", "/models/{name}/unshare/"): page_changes(body=UNSHARE),
        ("POST", "/models/{name}/archive/"): page_changes(editor=403),
        ("GET", "/models/{name}/upload/"): page_changes(200),
        ("POST", "/models/{name}/upload/"): page_changes(body=page_version_upload),
        ("POST", "/models/{name}/aliases/"): page_changes(body={"alias": "staging", "version": 1}),
        ("GET", "/models/{name}/versions/{version}/"): page_reads(),
        ("POST", "/models/{name}/versions/{version}/"): page_changes(body={"description": "better", "tags": ""}),
        ("GET", "/models/{name}/versions/{version}/download/"): page_reads(),
    }
