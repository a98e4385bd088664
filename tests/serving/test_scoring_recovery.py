"""Scoring jobs survive lost messages and killed workers (apps/serving/scoring/recovery.py), and a
redelivered message never runs a job twice at once (the lease)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core import workers
from apps.core.recovery import recover_all
from apps.serving.models import ScoringJob
from apps.serving.scoring import recovery, runner
from apps.serving.scoring.lease import ScoringLease, lease_key
from tests.conftest import api_client_for
from tests.serving.test_scoring import JOBS, csv_file, input_table, post_job


@pytest.fixture
def sent(monkeypatch):
    """What is sent to Celery (by name), instead of the broker."""
    messages = []

    def send_task(name, args=(), queue=None, **options):
        messages.append({"name": name, "args": list(args), "queue": queue, "task_id": options.get("task_id")})

    monkeypatch.setattr("apps.core.dispatch.celery_app.send_task", send_task)
    return messages


@pytest.fixture
def job(owner, scorer, django_capture_on_commit_callbacks, sent) -> ScoringJob:
    with django_capture_on_commit_callbacks(execute=True):
        pk = post_job(api_client_for(owner), csv_file(input_table(50))).json()["id"]
    assert sent == [{"name": "serving.score", "args": [pk], "queue": "cpu", "task_id": sent[0]["task_id"]}]
    sent.clear()
    return ScoringJob.objects.get(pk=pk)


def age(job: ScoringJob, seconds: float, **fields) -> ScoringJob:
    ScoringJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds), **fields)
    return ScoringJob.objects.get(pk=job.pk)


@pytest.mark.django_db
def test_a_running_job_whose_worker_died_resumes_under_a_new_message(job, sent, django_capture_on_commit_callbacks):
    old_task = job.celery_task_id
    age(job, 600, state="running", attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.recover()["resumed"] == 1
    job.refresh_from_db()
    assert job.state == "retrying" and job.celery_task_id != old_task
    assert sent == [{"name": "serving.score", "args": [job.pk], "queue": "cpu", "task_id": job.celery_task_id}]
    assert runner.execute(job.pk, task_id=old_task) == runner.STALE  # the lost message, surfacing late
    assert runner.execute(job.pk, task_id=job.celery_task_id) == "succeeded"
    assert ScoringJob.objects.get(pk=job.pk).attempts == 2
    assert recovery.recover() == {"requeued": 0, "resumed": 0, "cancelled": 0, "failed": 0}


@pytest.mark.django_db
def test_a_job_whose_lease_is_live_is_left_alone(job, sent):
    age(job, 600, state="running")
    lease = ScoringLease(job, hostname="elsewhere")
    assert lease.acquire()
    try:
        assert recovery.recover()["resumed"] == 0
        assert runner.execute(job.pk) == runner.DUPLICATE  # a redelivery while the first still runs
        assert ScoringJob.objects.get(pk=job.pk).state == "running"
    finally:
        lease.release()
    assert not workers.redis_client().exists(lease_key(job))


@pytest.mark.django_db
def test_recovery_cancels_fails_or_requeues(job, owner, scorer, sent, django_capture_on_commit_callbacks):
    age(job, 600, state="running", cancel_requested=True)
    assert recovery.recover()["cancelled"] == 1
    assert ScoringJob.objects.get(pk=job.pk).state == "cancelled"

    with django_capture_on_commit_callbacks(execute=True):
        second = post_job(api_client_for(owner), csv_file(input_table(5))).json()["id"]
    sent.clear()
    age(ScoringJob.objects.get(pk=second), 600, state="running", attempts=recovery.MAX_ATTEMPTS)
    assert recovery.recover()["failed"] == 1
    assert "lost 3 times" in ScoringJob.objects.get(pk=second).error

    with django_capture_on_commit_callbacks(execute=True):
        third = post_job(api_client_for(owner), csv_file(input_table(5))).json()["id"]
    sent.clear()
    assert recovery.recover()["requeued"] == 0  # just queued: its message may simply be waiting
    queued = age(ScoringJob.objects.get(pk=third), recovery.QUEUED_STALE_S + 1, queue="cpu.scoring-test")
    client = workers.redis_client()
    client.rpush("cpu.scoring-test", f'{{"headers": {{"id": "{queued.celery_task_id}"}}}}')
    try:
        assert recovery.recover()["requeued"] == 0  # its message waits in the queue: no worker took it yet
    finally:
        client.delete("cpu.scoring-test")
    with django_capture_on_commit_callbacks(execute=True):
        assert recover_all()["serving.scoring"]["requeued"] == 1
    assert sent == [
        {"name": "serving.score", "args": [third], "queue": "cpu.scoring-test", "task_id": queued.celery_task_id}
    ]
    assert recovery.recover()["requeued"] == 0  # sent again just now


@pytest.mark.django_db
def test_a_cancel_of_a_running_job_whose_delivery_is_gone_ends_it_at_once(job, owner):
    age(job, 0, state="running")
    response = api_client_for(owner).post(f"{JOBS}{job.pk}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
