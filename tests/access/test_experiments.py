"""Experiments and runs: lists, details, logging, artifacts, metrics, sharing (API and pages).

Runs have no permissions of their own: a run answers as its experiment does (the shared object)."""

from __future__ import annotations

from tests.access import objects
from tests.access.matrix import (
    HIDDEN_REFERENCE,
    AccessMatrix,
    api_changes,
    api_collection,
    api_reads,
    api_sharing,
    page_changes,
    page_collection,
    page_reads,
)

X = "/api/v1/experiments/{experiment}"
R = "/api/v1/runs/{run}"
SHARE = {"user": "bystander", "role": "viewer"}
UNSHARE = {"user": "viewer"}
POINTS = {"metrics": [{"key": "loss", "value": 0.4, "step": 1, "timestamp": 1714521600000}]}


def new_run(world):
    return {"experiment": world.params["experiment"], "name": "run-2"}


def artifact(world):
    return {"file": objects.upload("more.txt", b"more"), "path": "more.txt"}


class TestExperimentApiAccess(AccessMatrix):
    make = staticmethod(objects.experiments)
    rows = {
        ("GET", "/api/v1/experiments/"): api_collection(),
        ("POST", "/api/v1/experiments/"): api_collection(201, body={"name": "fresh-experiment"}),
        ("GET", f"{X}/"): api_reads(),
        ("PATCH", f"{X}/"): api_changes(body={"description": "changed"}),
        ("GET", f"{X}/sharing"): api_sharing(),
        ("POST", f"{X}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{X}/sharing"): api_sharing(204, body=UNSHARE),
        ("GET", "/api/v1/runs/"): api_collection(),
        ("POST", "/api/v1/runs/"): api_changes(201, stranger=HIDDEN_REFERENCE, body=new_run),
        ("GET", f"{R}/"): api_reads(),
        ("PATCH", f"{R}/"): api_changes(body={"progress": 0.5}),
        ("POST", f"{R}/log-batch"): api_changes(body=POINTS),
        ("GET", f"{R}/log"): api_reads(),
        ("POST", f"{R}/log"): api_changes(204, body={"text": "epoch 1\n"}),
        ("GET", f"{R}/artifacts"): api_reads(),
        ("POST", f"{R}/artifacts"): api_changes(201, body=artifact, format="multipart"),
        ("GET", f"{R}/artifacts/notes.txt"): api_reads(),
        ("GET", f"{R}/metrics/"): api_reads(),
        ("GET", f"{R}/metrics/loss"): api_reads(),
        ("GET", f"{R}/sharing"): api_sharing(),
        ("POST", f"{R}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{R}/sharing"): api_sharing(204, body=UNSHARE),
    }


class TestExperimentPageAccess(AccessMatrix):
    make = staticmethod(objects.experiments)
    rows = {
        ("GET", "/experiments/"): page_collection(),
        ("POST", "/experiments/"): page_collection(302, body={"name": "fresh-experiment", "description": ""}),
        ("GET", "/experiments/{experiment}/"): page_reads(),
        ("GET", "/experiments/{experiment}/compare/?runs={run}&runs={other_run}"): page_reads(),
        ("POST", "/experiments/{experiment}/share/"): page_changes(body=SHARE),
        ("POST", "/experiments/{experiment}/unshare/"): page_changes(body=UNSHARE),
        # A user's own column choice: whoever may view the experiment may save theirs.
        ("POST", "/experiments/{experiment}/columns/"): page_reads(
            owner=302, viewer=302, editor=302, team=302, admin=302, body={"metric": ["loss"]}
        ),
        ("GET", "/runs/{run}/"): page_reads(),
        # A run's Sharing card shares its experiment (runs have no access list of their own).
        ("POST", "/runs/{run}/share/"): page_changes(body=SHARE),
        ("POST", "/runs/{run}/unshare/"): page_changes(body=UNSHARE),
    }
