"""Materialization jobs survive restarts: a job whose Celery message or worker is gone is sent again
(queued) or restarted (running) exactly once, with a line in its log, and really completes; a cancel
or a failure always reaches a final state. The task runs inline here, as a worker would run it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import Conflict
from apps.core.recovery import recover_all
from apps.features import offline, online, recovery, services, tasks
from apps.features.models import MaterializationJob
from tests.conftest import api_client_for
from tests.conftest import page_client_for as browser
from tests.features.conftest import T0

pytestmark = pytest.mark.django_db
LONG_AGO = timedelta(hours=1)


@pytest.fixture
def sent(monkeypatch):
    """Tasks sent to the broker, as (name, args, queue); nothing reaches a real broker."""
    messages = []

    def send_task(name, args=(), queue=None, **options):
        messages.append((name, list(args), queue))

    monkeypatch.setattr("apps.core.dispatch.celery_app.send_task", send_task)
    return messages


def deliver(messages) -> None:
    """A worker takes every message in the queue (and the queue empties)."""
    while messages:
        name, args, _ = messages.pop(0)
        assert name == "features.materialize"
        tasks.materialize(*args)


def queue_job(view, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.feature_view_materialize(
            view=view, actor=owner, start=T0 - timedelta(days=1), end=T0 + timedelta(days=30)
        )


def balances(owner) -> list:
    body = services.online_read(actor=owner, features=["customer-stats:balance"], entities={"customer_id": [0, 1, 2]})
    return body["results"]["customer-stats:balance"]["values"]


def age(job, **fields) -> None:
    """Make the job look as if its message (dispatched_at) or worker (heartbeat_at) went silent long ago."""
    MaterializationJob.objects.filter(pk=job.pk).update(**{k: timezone.now() - LONG_AGO for k in fields})


def test_queued_job_whose_message_was_lost_is_sent_again_once_and_completes(
    ingested, owner, sent, django_capture_on_commit_callbacks
):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    sent.clear()  # the broker restarted empty: the message is gone
    age(job, dispatched_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.recover()["requeued"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.recover()["requeued"] == 0  # once: it was just sent
    assert sent == [("features.materialize", [job.pk], "default")]
    deliver(sent)
    job.refresh_from_db()
    assert (job.state, job.attempt, job.keys_written) == ("succeeded", 1, 3)
    assert "re-dispatched by recovery" in job.log
    assert balances(owner) == [1.0, 101.0, 201.0]


def test_a_message_that_was_only_slow_runs_the_job_once(ingested, owner, sent, django_capture_on_commit_callbacks):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    age(job, dispatched_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        recovery.recover()
    assert len(sent) == 2  # the original message and the recovery's
    deliver(sent)
    job.refresh_from_db()
    assert (job.state, job.attempt) == ("succeeded", 1)  # the second delivery found it done


def test_running_job_whose_worker_died_is_restarted_once_and_completes(
    ingested, owner, sent, django_capture_on_commit_callbacks, monkeypatch
):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    real_write = online.write_latest

    def killed(**kwargs):  # the worker dies after the first chunk reached Redis
        kwargs["progress"](1, 3)
        raise SystemExit("worker killed")

    monkeypatch.setattr(online, "write_latest", killed)
    with pytest.raises(SystemExit):
        deliver(sent)
    monkeypatch.setattr(online, "write_latest", real_write)
    job.refresh_from_db()
    assert (job.state, job.attempt) == ("running", 1)
    assert recovery.recover()["restarted"] == 0  # its heartbeat is fresh: the worker may be alive
    age(job, heartbeat_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.recover()["restarted"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.recover() == {"requeued": 0, "restarted": 0, "cancelled": 0, "failed": 0}
    job.refresh_from_db()
    assert job.state == "queued" and "restarted by recovery" in job.log
    assert len(sent) == 1
    deliver(sent)
    job.refresh_from_db()
    assert (job.state, job.attempt, job.progress, job.keys_written) == ("succeeded", 2, 1.0, 3)
    assert balances(owner) == [1.0, 101.0, 201.0]


def test_a_worker_given_up_for_lost_cannot_change_the_restarted_job(
    ingested, owner, sent, django_capture_on_commit_callbacks, monkeypatch
):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    real_read = offline.read_view

    def stalls_then_wakes(*args, **kwargs):  # the first worker stalls; meanwhile it is restarted and done
        monkeypatch.setattr(offline, "read_view", real_read)
        age(job, heartbeat_at=True)
        with django_capture_on_commit_callbacks(execute=True):
            assert recovery.recover()["restarted"] == 1
        deliver(sent)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(offline, "read_view", stalls_then_wakes)
    name, args, _ = sent.pop(0)
    stale = tasks.materialize(*args)
    job.refresh_from_db()
    assert stale["state"] == "succeeded" and (job.state, job.attempt) == ("succeeded", 2)
    assert job.log.count("restarted by recovery") == 1


def test_materializing_a_range_twice_ends_in_the_same_online_state(
    ingested, owner, sent, django_capture_on_commit_callbacks
):
    first = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    deliver(sent)
    once = balances(owner)
    second = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    deliver(sent)
    assert balances(owner) == once == [1.0, 101.0, 201.0]
    assert {j.state for j in MaterializationJob.objects.filter(pk__in=[first.pk, second.pk])} == {"succeeded"}


def test_a_job_whose_worker_is_lost_again_and_again_ends_failed(
    ingested, owner, sent, django_capture_on_commit_callbacks
):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    MaterializationJob.objects.filter(pk=job.pk).update(state="running", attempt=recovery.MAX_ATTEMPTS)
    age(job, heartbeat_at=True)
    assert recovery.recover()["failed"] == 1
    job.refresh_from_db()
    assert job.state == "failed" and "lost 3 times" in job.error and job.finished_at is not None
    assert "failed by recovery" in job.log


def test_cancel_of_a_queued_job_is_final_at_once_and_a_late_delivery_does_nothing(
    ingested, owner, sent, django_capture_on_commit_callbacks
):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    job = services.materialization_cancel(job=job, actor=owner)
    assert job.state == "cancelled" and "cancelled by owner" in job.log
    deliver(sent)
    job.refresh_from_db()
    assert (job.state, job.attempt) == ("cancelled", 0)
    assert balances(owner) == [None, None, None]
    with pytest.raises(Conflict):
        services.materialization_cancel(job=job, actor=owner)


def test_cancel_of_a_running_job_stops_it_at_its_next_chunk(
    ingested, owner, sent, django_capture_on_commit_callbacks, monkeypatch
):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    real_read = offline.read_view

    def cancelled_meanwhile(*args, **kwargs):
        services.materialization_cancel(job=MaterializationJob.objects.get(pk=job.pk), actor=owner)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(offline, "read_view", cancelled_meanwhile)
    deliver(sent)
    job.refresh_from_db()
    assert job.state == "cancelled" and job.finished_at is not None and "cancelled while running" in job.log


def test_cancel_of_a_running_job_whose_worker_is_gone_ends_it_at_recovery(
    ingested, owner, sent, django_capture_on_commit_callbacks
):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    MaterializationJob.objects.filter(pk=job.pk).update(state="running", attempt=1)
    services.materialization_cancel(job=MaterializationJob.objects.get(pk=job.pk), actor=owner)
    age(job, heartbeat_at=True)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.recover()["cancelled"] == 1
    job.refresh_from_db()
    assert job.state == "cancelled" and not sent and "cancelled by recovery" in job.log


def test_failure_is_recorded_as_final(ingested, owner, sent, django_capture_on_commit_callbacks, monkeypatch):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)

    def broken(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(offline, "read_view", broken)
    deliver(sent)
    job.refresh_from_db()
    assert (job.state, job.error) == ("failed", "disk gone") and job.finished_at is not None
    assert recovery.recover() == {"requeued": 0, "restarted": 0, "cancelled": 0, "failed": 0}


def test_the_core_runs_the_feature_store_recoverer(ingested, owner, sent, django_capture_on_commit_callbacks):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    age(job, dispatched_at=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert recover_all()["features"]["requeued"] == 1


def test_cancel_through_the_api_and_the_page(ingested, owner, collaborator, sent, django_capture_on_commit_callbacks):
    job = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    url = f"/api/v1/feature-views/{ingested.name}/materializations/{job.pk}/cancel"
    response = api_client_for(owner).post(url)
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert api_client_for(owner).post(url).status_code == 409
    other = queue_job(ingested, owner, django_capture_on_commit_callbacks)
    page = browser(owner).get(f"/features/{ingested.name}/")
    assert f"/features/{ingested.name}/materializations/{other.pk}/cancel/".encode() in page.content
    response = browser(owner).post(f"/features/{ingested.name}/materializations/{other.pk}/cancel/")
    assert response.status_code == 302
    assert MaterializationJob.objects.get(pk=other.pk).state == "cancelled"
