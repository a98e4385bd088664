"""Batch scoring: jobs, cancel, predictions (API and pages).

A queued job (its dispatch waits for a commit that the matrix's transaction never makes) and a
succeeded one (run by the runner in process while the world is made)."""

from __future__ import annotations

import io

from tests.access import objects
from tests.access.matrix import (
    AccessMatrix,
    api_changes,
    api_collection,
    api_reads,
    page_changes,
    page_collection,
    page_reads,
)

J = "/api/v1/scoring/jobs/{job}"
D = "/api/v1/scoring/jobs/{done}"
MODEL = "scoring-matrix"


def csv_upload() -> io.BytesIO:
    text = "id,a,b,c,d,e,f\n" + "".join(f"{i},1,2,3,4,5,{i}\n" for i in range(20))
    upload = io.BytesIO(text.encode())
    upload.name = "rows.csv"
    return upload


def scoring(owner, team) -> dict:
    """The tiny six-in model, shared with the personas, a queued job and a succeeded one."""
    from apps.catalog import services as catalog
    from apps.serving.inference import runtime
    from apps.serving.scoring import runner
    from apps.serving.scoring.services import scoring_job_create

    runtime.SESSIONS.clear()  # version ids repeat across test databases
    model = catalog.model_create(actor=owner, name=MODEL, description="")
    data = objects.onnx_bytes()
    catalog.version_register(model=model, actor=owner, artifact=io.BytesIO(data), artifact_size=len(data))
    queued = scoring_job_create(actor=owner, model=MODEL, version=1, file=csv_upload(), exclude=["id"])
    done = scoring_job_create(actor=owner, model=MODEL, version=1, file=csv_upload(), exclude=["id"])
    assert runner.execute(done.pk) == "succeeded"
    return {"share": [model, queued, done], "job": queued.pk, "done": done.pk}


def api_body(world) -> dict:
    return {"model": MODEL, "version": 1, "file": csv_upload(), "exclude": ["id"]}


def page_body(world) -> dict:
    return {"model": MODEL, "version": 1, "resource_class": "cpu", "exclude": "id", "file": csv_upload()}


class TestScoringApiAccess(AccessMatrix):
    make = staticmethod(scoring)
    rows = {
        ("GET", "/api/v1/scoring/jobs/"): api_collection(),
        # a stranger cannot view the model: a field error that does not say whether it exists
        ("POST", "/api/v1/scoring/jobs/"): api_collection(202, body=api_body, format="multipart", stranger=400),
        ("GET", f"{J}/"): api_reads(),
        ("POST", f"{J}/cancel"): api_changes(),
        ("POST", f"{D}/cancel"): api_changes(409, viewer=403, team=403),
        ("GET", f"{J}/predictions"): api_reads(owner=409, viewer=409, editor=409, team=409, admin=409),
        ("GET", f"{D}/predictions"): api_reads(),
    }


class TestScoringPageAccess(AccessMatrix):
    make = staticmethod(scoring)
    rows = {
        ("GET", "/scoring/"): page_collection(),
        ("GET", "/scoring/new/"): page_collection(),
        # a stranger's form does not offer the model: the form comes back with the error (200)
        ("POST", "/scoring/new/"): page_collection(302, body=page_body, stranger=200),
        ("GET", "/scoring/{job}/"): page_reads(),
        ("POST", "/scoring/{job}/cancel/"): page_changes(),
        ("GET", "/scoring/{done}/predictions/"): page_reads(),
    }
