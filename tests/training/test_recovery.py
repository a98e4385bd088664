"""Jobs survive restarts (issue #12): the recoverer re-dispatches queued jobs whose message is gone and
resumes running jobs whose worker is gone, exactly once; stale messages never run a job twice; the
writer process dies with its parent; a cancel always reaches a final state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from apps.core import workers
from apps.core.recovery import recover_all
from apps.experiments.models import MetricPoint
from apps.training import recovery, runner
from apps.training.models import TrainingJob
from apps.training.services import LEASE_KEY, job_cancel
from tests.conftest import ROOT, _process_env, _stop, api_client_for
from tests.training.conftest import transactional_db_mark
from tests.training.test_e2e import JOBS, wait_for


@pytest.fixture(autouse=True)
def _no_gpu_workers():
    """Override the unit-test stub: the live test asks the real worker registry."""


@pytest.fixture
def region():
    """A queue of this test's own (cpu.<region>): no other worker on the shared broker takes its messages."""
    name = f"rec-{uuid.uuid4().hex[:10]}"
    yield name
    client = workers.redis_client()
    client.delete(*[f"cpu.{name}{suffix}" for suffix in recovery.PRIORITY_SUFFIXES])


@pytest.fixture
def no_grace(monkeypatch, settings):
    settings.TRAINING_LEASE_TTL_S = 5
    monkeypatch.setattr(recovery, "QUEUED_GRACE_S", 0.0)
    monkeypatch.setattr(recovery, "running_grace_s", lambda: 0.0)


@pytest.mark.django_db
class TestRecoverer:
    def test_queued_job_whose_message_is_lost_is_queued_again_once(self, launch, sent_tasks, region, no_grace):
        job = launch(region=region)
        old = job.celery_task_id
        assert recovery.recover()["requeued"] == 0  # first sight: only suspected
        with self.commit():
            assert recovery.recover()["requeued"] == 1
        job.refresh_from_db()
        assert job.state == "queued" and job.celery_task_id != old
        assert [(n, o["task_id"]) for n, _, o in sent_tasks["tasks"]][-1] == ("training.run_job", job.celery_task_id)
        job.run.refresh_from_db()
        assert "Recovered after a restart: its message was lost" in job.run.log_tail

    def test_queued_job_whose_message_waits_in_the_broker_is_left_alone(self, launch, sent_tasks, region, no_grace):
        job = launch(region=region)
        workers.redis_client().lpush(f"cpu.{region}", f'{{"headers": {{"id": "{job.celery_task_id}"}}}}')
        assert recovery.recover()["suspect"] == 0 and recovery.recover()["requeued"] == 0
        assert TrainingJob.objects.get(pk=job.pk).celery_task_id == job.celery_task_id

    def test_running_job_without_a_lease_resumes_from_its_checkpoint(self, launch, sent_tasks, no_grace):
        job = launch()
        TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=1, checkpoint_epoch=7)
        recovery.recover()
        with self.commit():
            assert recovery.recover()["resumed"] == 1
        job.refresh_from_db()
        job.run.refresh_from_db()
        assert job.state == "running" and "Recovered after a restart: starting again" in job.run.log_tail

    def test_running_job_with_a_live_lease_is_left_alone(self, launch, sent_tasks, no_grace, live_delivery):
        job = live_delivery(launch())
        TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=1)
        assert recovery.recover()["suspect"] == 0 and recovery.recover()["resumed"] == 0

    def test_cancel_of_a_running_job_whose_worker_is_gone_ends_it(self, launch, owner, sent_tasks):
        job = launch()
        TrainingJob.objects.filter(pk=job.pk).update(state="running", attempts=1)
        job = job_cancel(job=TrainingJob.objects.get(pk=job.pk), actor=owner)
        assert job.state == "cancelled" and "worker was gone" in job.error

    def test_a_stale_message_never_runs_the_job(self, launch, sent_tasks):
        job = launch()
        assert runner.execute(job.pk, hostname="w", task_id=str(uuid.uuid4())) == runner.STALE
        assert TrainingJob.objects.get(pk=job.pk).state == "queued" and job.attempts == 0

    @staticmethod
    def commit():
        from django.test import TestCase

        return TestCase.captureOnCommitCallbacks(execute=True)


# --- The writer process dies with its parent ------------------------------------------------------
PARENT = """
import os, socket, subprocess, sys, time
ours, theirs = socket.socketpair()
writer = subprocess.Popen([sys.executable, "-m", "apps.training.writer_main", str(theirs.fileno()), str(os.getpid())],
                          pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
if os.fork() == 0:  # a forked child keeps the socket open, as a data-loader worker would: no end-of-file
    time.sleep(60)
    os._exit(0)
print(writer.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.django_db
def test_writer_process_dies_with_its_parent_even_when_its_socket_stays_open():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, env=_process_env(), stdout=subprocess.PIPE,
                              start_new_session=True)  # fmt: skip
    try:
        writer = psutil.Process(int(parent.stdout.readline()))
        time.sleep(3)  # django.setup() in the writer
        assert writer.is_running()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        gone, _ = psutil.wait_procs([writer], timeout=10)
        assert gone, "the writer process outlived its parent"
    finally:
        os.killpg(parent.pid, signal.SIGKILL)


# --- A restart with jobs queued and running, through a real worker and broker ----------------------
def start_worker(region: str, log_path) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.child_process", "celery", "-A", "portal", "worker", "-Q", f"cpu.{region}",
               "-n", f"{region}-{uuid.uuid4().hex[:6]}@%h", "--concurrency", "1", "-l", "INFO", "--without-gossip",
               "--without-mingle"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=_process_env(), stdout=log_path.open("ab"),
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not workers.workers_by_queue().get(f"cpu.{region}"):
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.3)
    process.log_path = log_path
    return process


def steps_of(job, key="train_loss"):
    return sorted(MetricPoint.objects.filter(run_id=job.run_id, key=key).values_list("step", flat=True))


@transactional_db_mark()
def test_restart_with_jobs_queued_and_running_finishes_each_once(owner, region, tmp_path, settings):
    settings.TRAINING_LEASE_TTL_S = 5  # as the workers' (tests/training/conftest.py)
    client = api_client_for(owner)
    redis = workers.redis_client()
    small = {"epochs": 3, "batch_size": 64, "hidden_units": 8, "layers": 1, "patience": 0}
    long = {"epochs": 40, "batch_size": 8, "hidden_units": 8, "layers": 1, "patience": 0}
    launch = {"template": "tabular-mlp-classifier", "region": region, "seed": 5}
    queued_id = client.post(JOBS, {**launch, "params": small}, format="json").json()["id"]
    redis.delete(*[f"cpu.{region}{s}" for s in recovery.PRIORITY_SUFFIXES])  # the broker restarted empty
    worker = start_worker(region, tmp_path / "worker-1.log")
    try:
        running_id = client.post(JOBS, {**launch, "params": long}, format="json").json()["id"]
        wait_for(running_id, lambda j: j.state == "running" and j.checkpoint_epoch >= 2, worker=worker)
        os.killpg(worker.pid, signal.SIGKILL)  # worker, pool process and writer: the message stays unacked
        worker.wait()
    finally:
        _stop(worker)
    old_message = TrainingJob.objects.get(pk=running_id).celery_task_id
    worker = start_worker(region, tmp_path / "worker-2.log")
    try:
        deadline = time.monotonic() + 180
        while TrainingJob.objects.filter(pk__in=[queued_id, running_id]).exclude(state="succeeded").exists():
            assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
            recover_all()
            time.sleep(1)
        queued, running = TrainingJob.objects.get(pk=queued_id), TrainingJob.objects.get(pk=running_id)
        assert queued.attempts == 1 and "its message was lost" in queued.run.log_tail
        assert running.attempts == 2 and running.epochs_completed == 40
        assert "Recovered after a restart: resuming from epoch" in running.run.log_tail
        for job, epochs in ((queued, 3), (running, 40)):
            assert steps_of(job) == list(range(1, len(steps_of(job)) + 1))  # one point per step
            assert len(steps_of(job, "epoch")) == epochs
        # The killed delivery's message, restored from `unacked` (as after the visibility timeout), runs nothing.
        points = MetricPoint.objects.filter(run_id=running.run_id).count()
        restored = [m for m in redis.hvals(recovery.UNACKED) if old_message.encode() in m]
        assert restored, "the killed worker's message should still be unacknowledged"
        import json

        redis.lpush(f"cpu.{region}", json.dumps(json.loads(restored[0])[0]))
        deadline = time.monotonic() + 30
        while f"{old_message}] succeeded" not in worker.log_path.read_text():
            assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
            time.sleep(0.3)
        # The job has finished, so it is skipped; were it still active, it would be `stale` (TestRecoverer).
        assert any(f"{old_message}] succeeded" in line and "skipped" in line
                   for line in worker.log_path.read_text().splitlines())  # fmt: skip
        again = TrainingJob.objects.get(pk=running_id)
        assert again.attempts == 2 and MetricPoint.objects.filter(run_id=running.run_id).count() == points
        assert recover_all()["training"]["resumed"] == 0
    finally:
        _stop(worker)
        redis.delete(LEASE_KEY.format(old_message))
