"""Training: templates, jobs, sweeps, their cancels and sharing (API and pages).

Launching is real but small: the job is queued and its dispatch waits for a commit that the test
transaction never makes, so nothing trains."""

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

J = "/api/v1/training/jobs/{job}"
S = "/api/v1/training/sweeps/{sweep}"
SHARE = {"user": "bystander", "role": "viewer"}
UNSHARE = {"user": "viewer"}
LAUNCH = {"template": objects.TEMPLATE, "params": objects.TINY, "data": {"dataset": "wine"}}
SWEEP_PARAMS = {k: v for k, v in objects.TINY.items() if k != "hidden_units"}
SWEEP = {
    "name": "fresh-sweep",
    "template": objects.TEMPLATE,
    "method": "grid",
    "space": {"hidden_units": {"values": [4, 8]}},
    "params": SWEEP_PARAMS,
    "parallelism": 1,
    "data": {"dataset": "wine"},
}
PAGE_LAUNCH = {
    "dataset": "wine", "resource_class": "cpu", "priority": 5, "max_runtime_s": 600, "seed": 0, **objects.TINY,
}  # fmt: skip
PAGE_SWEEP = {
    "name": "fresh-sweep", "method": "grid", "space": '{"hidden_units": {"values": [4, 8]}}',
    "params": '{"epochs": 1, "batch_size": 256, "layers": 1, "patience": 0}', "max_trials": 2, "parallelism": 1,
    "seed": 0, "dataset": "wine",
}  # fmt: skip


class TestTrainingApiAccess(AccessMatrix):
    make = staticmethod(objects.training)
    rows = {
        ("GET", "/api/v1/training/templates/"): api_collection(),
        ("GET", "/api/v1/training/jobs/"): api_collection(),
        ("POST", "/api/v1/training/jobs/"): api_collection(201, body=LAUNCH),
        ("GET", f"{J}/"): api_reads(),
        ("POST", f"{J}/cancel"): api_changes(),
        ("GET", f"{J}/sharing"): api_sharing(),
        ("POST", f"{J}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{J}/sharing"): api_sharing(204, body=UNSHARE),
        ("GET", "/api/v1/training/sweeps/"): api_collection(),
        ("POST", "/api/v1/training/sweeps/"): api_collection(201, body=SWEEP),
        ("GET", f"{S}/"): api_reads(),
        ("POST", f"{S}/cancel"): api_changes(),
        ("GET", f"{S}/sharing"): api_sharing(),
        ("POST", f"{S}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{S}/sharing"): api_sharing(204, body=UNSHARE),
    }


class TestTrainingPageAccess(AccessMatrix):
    make = staticmethod(objects.training)
    rows = {
        ("GET", "/training/"): page_collection(),
        ("GET", "/training/templates/"): page_collection(),
        ("GET", f"/training/templates/{objects.TEMPLATE}/launch/"): page_collection(),
        ("POST", f"/training/templates/{objects.TEMPLATE}/launch/"): page_collection(302, body=PAGE_LAUNCH),
        ("GET", "/training/jobs/{job}/"): page_reads(),
        ("POST", "/training/jobs/{job}/cancel/"): page_changes(),
        ("GET", "/training/queues/"): page_collection(),
        ("GET", "/training/costs/"): page_collection(),
        ("GET", "/training/sweeps/"): page_collection(),
        ("GET", f"/training/sweeps/new/{objects.TEMPLATE}/"): page_collection(),
        ("POST", f"/training/sweeps/new/{objects.TEMPLATE}/"): page_collection(302, body=PAGE_SWEEP),
        ("GET", "/training/sweeps/{sweep}/"): page_reads(),
        ("POST", "/training/sweeps/{sweep}/cancel/"): page_changes(),
        ("POST", "/training/jobs/{job}/share/"): page_changes(body=SHARE),
        ("POST", "/training/jobs/{job}/unshare/"): page_changes(body=UNSHARE),
        ("POST", "/training/sweeps/{sweep}/share/"): page_changes(body=SHARE),
        ("POST", "/training/sweeps/{sweep}/unshare/"): page_changes(body=UNSHARE),
    }


def gpu_job(owner, team) -> dict:
    """A GPU job waiting for a GPU worker (the suite has none), which its owner may move to a CPU."""
    from apps.training import services

    job = services.job_launch(
        actor=owner,
        template=objects.TEMPLATE,
        params=dict(objects.TINY),
        data={"dataset": "wine"},
        resource_class="gpu",
    )
    return {"share": [job], "gpu_job": job.pk}


class TestTrainingRunOnCpuAccess(AccessMatrix):
    """ "Run on CPU instead": the owner and editors (and admins); viewers 403, strangers 404."""

    make = staticmethod(gpu_job)
    rows = {
        ("POST", "/api/v1/training/jobs/{gpu_job}/run-on-cpu"): api_changes(),
        ("POST", "/training/jobs/{gpu_job}/run-on-cpu/"): page_changes(),
    }
