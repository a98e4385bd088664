"""Real jobs through a real Celery worker and Redis broker: succeed, cancel, survive a killed worker."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from django.test import Client

from apps.experiments.models import MetricPoint, RunArtifact
from apps.training.models import TrainingJob
from tests.conftest import api_client_for
from tests.training.conftest import transactional_db_mark

pytestmark = transactional_db_mark()
JOBS = "/api/v1/training/jobs/"


@pytest.fixture(autouse=True)
def _no_gpu_workers():
    """Override the unit-test stub: these tests ask the real worker registry."""


def wait_for(job_id, predicate, timeout=90, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = TrainingJob.objects.get(pk=job_id)
        if predicate(job):
            return job
        time.sleep(0.1)
    log = worker.log_path.read_text()[-3000:] if worker is not None else ""
    raise AssertionError(f"job {job_id} stuck in {job.state} ({job.error}); worker log:\n{log}")


def test_real_job_end_to_end(live_worker, owner):
    client = api_client_for(owner)
    payload = {"template": "digits-cnn", "params": {"epochs": 2, "channels": 4, "batch_size": 128}, "seed": 1}
    body = client.post(JOBS, payload, format="json").json()
    job = wait_for(body["id"], lambda j: j.is_terminal, worker=live_worker)
    assert job.state == "succeeded", job.error
    assert job.worker.startswith("test-") and job.model_version is not None
    detail = client.get(f"{JOBS}{job.pk}/").json()
    assert detail["progress"] == 1.0 and detail["model_version"]["version"] >= 1 and detail["cost"] >= 0
    steps = list(MetricPoint.objects.filter(run_id=job.run_id, key="train_loss").values_list("step", flat=True))
    assert sorted(steps) == list(range(1, len(steps) + 1))
    # the version keeps its ONNX parity check; the run lists the model file it produced and opens on
    # the template's metric
    version = job.model_version
    assert 0 <= version.onnx_parity["max_abs_diff"] < version.onnx_parity["tolerance"]
    artifact = RunArtifact.objects.get(run=job.run, path="model.onnx")
    assert artifact.uri == f"models:/{version.model.name}/{version.version}"
    assert artifact.digest == f"sha256:{version.artifact.sha256}"
    assert job.run.tags["primary_metric"] == "val_loss"


def test_cancel_running_job_through_worker(live_worker, owner):
    client = api_client_for(owner)
    params = {"epochs": 500, "batch_size": 8, "hidden_units": 8, "layers": 1, "patience": 0}
    body = client.post(JOBS, {"template": "tabular-mlp-classifier", "params": params}, format="json").json()
    wait_for(body["id"], lambda j: j.state == "running" and j.epochs_completed >= 1, worker=live_worker)
    assert client.post(f"{JOBS}{body['id']}/cancel").status_code == 200
    job = wait_for(body["id"], lambda j: j.is_terminal, timeout=30, worker=live_worker)
    assert job.state == "cancelled" and job.model_version is None
    job.run.refresh_from_db()
    assert job.run.status == "killed"


def test_killed_worker_process_resumes_from_checkpoint(live_worker, owner):
    client = api_client_for(owner)
    # Long enough (40 short epochs) that the kill lands mid-run however fast the worker is.
    params = {"epochs": 40, "batch_size": 8, "hidden_units": 8, "layers": 1, "patience": 0}
    body = client.post(JOBS, {"template": "tabular-mlp-classifier", "params": params, "seed": 5}, format="json")
    job_id = body.json()["id"]
    job = wait_for(job_id, lambda j: j.state == "running" and j.checkpoint_epoch >= 2, worker=live_worker)
    children = psutil.Process(live_worker.pid).children()
    busy = [c for c in children if c.cpu_percent(interval=0.2) > 0] or children
    os.kill(busy[0].pid, signal.SIGKILL)  # the prefork child running the job dies mid-training
    job = wait_for(job_id, lambda j: j.is_terminal, timeout=120, worker=live_worker)
    assert job.state == "succeeded", job.error
    assert job.attempts == 2, job.attempts
    assert job.epochs_completed == 40
    steps = list(MetricPoint.objects.filter(run_id=job.run_id, key="train_loss").values_list("step", flat=True))
    assert sorted(steps) == list(range(1, len(steps) + 1))  # no duplicates, no gaps
    assert MetricPoint.objects.filter(run_id=job.run_id, key="epoch").count() == 40
    assert "Resuming from the checkpoint" in job.run.log_tail


def test_gpu_job_waits_while_no_gpu_worker_is_online(live_worker, owner):
    from apps.core.workers import queue_depths

    client = api_client_for(owner)
    body = client.post(JOBS, {"template": "digits-cnn", "resource_class": "gpu"}, format="json").json()
    assert body["queue"] == "gpu" and "waits" in body["warning"]
    time.sleep(1.5)  # the CPU worker is idle and must not take it
    job = TrainingJob.objects.get(pk=body["id"])
    assert job.state == "queued" and job.started_at is None and queue_depths(["gpu"])["gpu"] >= 1
    page = Client()
    page.force_login(owner)
    body = page.get("/training/queues/").content.decode()
    assert "<code>gpu</code>" in body and "jobs wait here until a worker" in body
    assert client.post(f"{JOBS}{job.pk}/cancel").json()["state"] == "cancelled"
