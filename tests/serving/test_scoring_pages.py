"""Batch-scoring pages: list with progress, the new-job form (inline errors), the job page with
its live poll, cancel and downloads."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest

from apps.serving.models import ScoringJob
from apps.serving.scoring import runner
from tests.conftest import page_client_for
from tests.serving.test_scoring import csv_file, fresh_sessions, input_table  # noqa: F401 (autouse fixture)


def form_body(**fields) -> dict:
    return {"model": "fraud-score", "version": 1, "resource_class": "cpu", "exclude": "id, label",
            "file": csv_file(input_table(120)), **fields}  # fmt: skip


@pytest.mark.django_db
def test_new_job_form_queues_a_job_and_the_pages_follow_it(owner, scorer):
    page = page_client_for(owner)
    form = page.get("/scoring/new/")
    assert form.status_code == 200 and b'name="file"' in form.content and b"fraud-score" in form.content
    response = page.post("/scoring/new/", form_body())
    job = ScoringJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/scoring/{job.pk}/"
    assert job.source["exclude"] == ["id", "label"]

    detail = page.get(f"/scoring/{job.pk}/").content.decode()
    assert f'data-api="/api/v1/scoring/jobs/{job.pk}/"' in detail and "js/serving-scoring-live.js" in detail
    polled = page.get(f"/api/v1/scoring/jobs/{job.pk}/", headers={"accept": "application/json"})
    assert polled.status_code == 200 and polled.json()["state"] == "queued"  # what the page's poll reads
    assert "Download PARQUET" in detail  # present but hidden until it succeeds
    listing = page.get("/scoring/").content.decode()
    assert f"/scoring/{job.pk}/" in listing and 'role="progressbar"' in listing and "queued" in listing

    assert runner.execute(job.pk) == "succeeded"
    detail = page.get(f"/scoring/{job.pk}/").content.decode()
    assert 'id="downloads" class="mt-3"' in detail and job.__class__.objects.get().digest in detail
    assert '<span id="job-rows">120</span> of <span id="job-rows-total">120</span>' in detail
    download = page.get(f"/scoring/{job.pk}/predictions/?format=parquet")
    assert download.status_code == 200
    assert pq.read_table(io.BytesIO(b"".join(download.streaming_content))).num_rows == 120
    csv = page.get(f"/scoring/{job.pk}/predictions/?format=csv")
    assert b"".join(csv.streaming_content).startswith(b'"row","output_0","output_1"\n0,')
    assert page.post(f"/scoring/{job.pk}/cancel/").status_code == 409


@pytest.mark.django_db
def test_form_errors_show_inline(owner, scorer):
    page = page_client_for(owner)
    response = page.post("/scoring/new/", form_body(exclude="id"))  # label counts as an input then
    assert response.status_code == 200 and b"is-invalid" in response.content
    assert b"Name id and label columns in exclude" in response.content
    response = page.post("/scoring/new/", form_body(file=""))
    assert response.status_code == 200 and b"Give either a file to score or a training set" in response.content
    assert not ScoringJob.objects.exists()


@pytest.mark.django_db
def test_cancel_from_the_page(owner, scorer):
    page = page_client_for(owner)
    page.post("/scoring/new/", form_body())
    job = ScoringJob.objects.get()
    assert page.get(f"/scoring/{job.pk}/predictions/").status_code == 409
    response = page.post(f"/scoring/{job.pk}/cancel/")
    assert response.status_code == 302
    assert ScoringJob.objects.get().state == "cancelled"


@pytest.mark.django_db
def test_job_lists_take_the_same_queries_at_n_and_2n_jobs(owner, scorer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.serving.scoring.services import scoring_job_create
    from tests.conftest import api_client_for

    api, page = api_client_for(owner), page_client_for(owner)

    def add(n: int) -> None:
        for _ in range(n):
            scoring_job_create(actor=owner, model="fraud-score", version=1, file=csv_file(input_table(5)),
                               exclude=["id", "label"])  # fmt: skip

    def counts() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as api_queries:
            listed = api.get("/api/v1/scoring/jobs/").json()
        assert listed["count"] == len(listed["results"]) == ScoringJob.objects.count()
        with CaptureQueriesContext(connection) as page_queries:
            shown = page.get("/scoring/").content.decode()
        assert shown.count('role="progressbar"') == ScoringJob.objects.count()
        return len(api_queries), len(page_queries)

    add(3)
    counts()  # warm: the token and permission caches fill on the first request
    first = counts()
    add(3)
    assert counts() == first
