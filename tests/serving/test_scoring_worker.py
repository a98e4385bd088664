"""Batch scoring end to end through a real Celery worker (queues cpu, default) and Redis: the API
queues the job, the worker scores it, the predictions equal ONNX Runtime run directly."""

from __future__ import annotations

import io
import time

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from apps.serving.models import ScoringJob
from tests.conftest import api_client_for
from tests.serving.test_scoring import JOBS, csv_file, download, expected_outputs, input_table, parquet_file
from tests.training.conftest import transactional_db_mark

pytestmark = transactional_db_mark()


@pytest.fixture
def vault_storage(settings):
    """The worker's vault (the settings' own, under VAR_DIR), not a per-test folder it cannot see."""


def wait_for_end(pk: int, worker, timeout: float = 90) -> ScoringJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ScoringJob.objects.get(pk=pk)
        if job.is_terminal:
            return job
        time.sleep(0.2)
    raise AssertionError(f"scoring job {pk} stuck in {job.state}; worker log:\n{worker.log_path.read_text()[-3000:]}")


@pytest.mark.parametrize("make_file", [csv_file, parquet_file])
def test_upload_is_scored_by_a_real_worker(live_worker, owner, scorer, mlp_onnx, make_file):
    client = api_client_for(owner)
    table = input_table(300, seed=11)
    body = {"model": "fraud-score", "version": 2, "file": make_file(table), "exclude": ["label"], "keep": ["id"]}
    response = client.post(JOBS, body, format="multipart")
    assert response.status_code == 202, response.content
    job = wait_for_end(response.json()["id"], live_worker)
    assert job.state == "succeeded", (job.error, live_worker.log_path.read_text()[-2000:])
    assert job.worker.startswith("test-") and job.attempts == 1 and job.rows_done == 300
    want = expected_outputs(mlp_onnx[1], table)  # version 2 is the seed-1 model
    got = pq.read_table(io.BytesIO(download(client, job.pk, "parquet")[0]))
    assert got.column("id").to_pylist() == table.column("id").to_pylist()
    np.testing.assert_allclose(np.column_stack([got.column("output_0"), got.column("output_1")]), want, atol=1e-6)
    from_csv = pacsv.read_csv(io.BytesIO(download(client, job.pk, "csv")[0]))
    assert from_csv.column_names == ["id", "output_0", "output_1"] and from_csv.num_rows == 300
    np.testing.assert_allclose(from_csv.column("output_0").to_numpy(), want[:, 0], rtol=1e-5, atol=1e-6)


def test_a_gpu_job_waits_and_cancels_at_once(live_worker, owner, scorer):
    """No GPU worker is online: the job stays queued (the cpu worker never takes it) until cancelled."""
    client = api_client_for(owner)
    body = {"model": "fraud-score", "version": 1, "file": csv_file(input_table(20)), "exclude": ["id", "label"],
            "resource_class": "gpu"}  # fmt: skip
    response = client.post(JOBS, body, format="multipart")
    assert response.status_code == 202 and response.json()["queue"] == "gpu"
    time.sleep(1.0)
    assert ScoringJob.objects.get(pk=response.json()["id"]).state == "queued"
    cancelled = client.post(f"{JOBS}{response.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
