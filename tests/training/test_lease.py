"""Duplicate delivery guard: a per-job Redis lease keeps a redelivered message from running a job twice."""

from __future__ import annotations

import time

import pytest
from celery.exceptions import Retry

from apps.core import workers
from apps.training import runner
from apps.training.models import TrainingJob
from apps.training.tasks import run_job

pytestmark = pytest.mark.django_db


def lease_key(job) -> str:
    return runner.LEASE_KEY.format(job.celery_task_id)


@pytest.fixture
def redis():
    return workers.redis_client()


def snapshot(job_id: int) -> dict:
    fields = ("state", "attempts", "worker", "started_at", "updated_at", "progress", "error", "cancel_requested")
    return TrainingJob.objects.values(*fields).get(pk=job_id)


@pytest.mark.parametrize("state", ["queued", "running"])
def test_second_delivery_with_live_lease_does_not_run_or_touch_the_job(launch, redis, state, monkeypatch):
    job = launch()
    TrainingJob.objects.filter(pk=job.pk).update(state=state)
    redis.set(lease_key(job), "worker-1:123:abc", px=60_000)
    monkeypatch.setattr(runner, "_train", lambda job: pytest.fail("a duplicate delivery must not train"))
    before = snapshot(job.pk)
    assert runner.execute(job.pk, hostname="worker-2") == runner.DUPLICATE
    assert snapshot(job.pk) == before
    assert redis.get(lease_key(job)) == b"worker-1:123:abc"  # the holder's lease is left alone
    redis.delete(lease_key(job))


def test_concurrent_delivery_during_training_is_refused(launch, redis, monkeypatch):
    job = launch()
    seen = {}
    train = runner._train

    def train_and_redeliver(job):
        seen["holder"] = redis.get(lease_key(job)).decode()
        seen["second"] = runner.execute(job.pk, hostname="worker-2")
        seen["state"] = TrainingJob.objects.get(pk=job.pk).state
        return train(job)

    monkeypatch.setattr(runner, "_train", train_and_redeliver)
    assert runner.execute(job.pk, hostname="worker-1") == "succeeded"
    assert seen == {"holder": seen["holder"], "second": runner.DUPLICATE, "state": "running"}
    assert seen["holder"].startswith("worker-1:")
    assert TrainingJob.objects.get(pk=job.pk).attempts == 1
    assert redis.get(lease_key(job)) is None  # released at the end


def test_delivery_after_the_lease_expired_resumes(launch, redis):
    job = launch()
    # The first delivery started and its worker died: the row says running, its lease ran out.
    TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=1, worker="worker-1")
    redis.set(lease_key(job), "worker-1:123:abc", px=50)
    time.sleep(0.2)
    assert runner.execute(job.pk, hostname="worker-2") == "succeeded"
    job.refresh_from_db()
    assert job.attempts == 2 and job.worker == "worker-2" and job.model_version_id
    assert redis.get(lease_key(job)) is None


def test_heartbeat_keeps_the_lease_and_release_only_drops_our_own(launch, redis):
    job = launch()
    lease = runner.JobLease(job, hostname="w1", ttl_s=0.3)
    assert lease.acquire() and not runner.JobLease(job, hostname="w2").acquire()
    lease.start_heartbeat()
    time.sleep(0.8)  # more than two TTLs: only the heartbeat keeps it alive
    assert redis.get(lease_key(job)).decode() == lease.token
    lease.release()
    assert redis.get(lease_key(job)) is None
    other = runner.JobLease(job, hostname="w3", ttl_s=30)
    assert other.acquire()
    lease.held = True  # a stale holder releasing late must not drop the new holder's lease
    lease.release()
    assert redis.get(lease_key(job)).decode() == other.token
    other.release()


def test_task_retries_a_duplicate_later_and_never_loops_eagerly(launch, redis, monkeypatch, settings):
    settings.TRAINING_LEASE_TTL_S = 45
    job = launch()
    redis.set(lease_key(job), "worker-1:123:abc", px=44_500)
    # eager, with the job's own task id as job_enqueue sends it: returns, no retry loop
    assert run_job.apply(args=[job.pk], task_id=job.celery_task_id).get() == runner.DUPLICATE
    retries = []

    def fake_retry(**kwargs):
        retries.append(kwargs)
        return Retry("later")

    monkeypatch.setattr(run_job, "retry", fake_retry)
    run_job.push_request(is_eager=False, called_directly=False, hostname="worker-2", id=job.celery_task_id)
    try:
        with pytest.raises(Retry):
            run_job.run(job.pk)
    finally:
        run_job.pop_request()
    assert len(retries) == 1 and 44 < retries[0]["countdown"] <= 45  # just after the holder's lease expires
    assert TrainingJob.objects.get(pk=job.pk).state == "queued"
    redis.delete(lease_key(job))
