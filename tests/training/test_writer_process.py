"""The worker's writer process: writes a job's points, checkpoints and progress; reports errors,
cancel requests and its own loss; a lost writer makes the job resume, not fail."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from apps.experiments.models import MetricPoint
from apps.training import runner
from apps.training.callbacks import PortalCallbacks
from apps.training.engine import TrainConfig, train
from apps.training.models import TrainingJob
from apps.training.writer_process import ProcessSink, WriterLost, WriterProcess
from tests.conftest import _process_env, api_client_for
from tests.training.conftest import transactional_db_mark
from tests.training.test_e2e import JOBS, wait_for

pytestmark = transactional_db_mark()
PARAMS = {"epochs": 3, "batch_size": 64, "hidden_units": 8, "layers": 1, "patience": 0}


@pytest.fixture(autouse=True)
def _no_gpu_workers():
    """Override the unit-test stub: the live-worker test asks the real worker registry."""


@pytest.fixture
def writer(monkeypatch, settings):
    """A writer process on the test database, used by every ProcessSink of this test."""
    settings.TRAINING_WRITER = "process"
    process = WriterProcess(env=_process_env())
    monkeypatch.setattr(WriterProcess, "_current", process)
    yield process
    process.shutdown()


@pytest.fixture
def running_job(launch, sent_tasks):
    """A job row to write for; nothing is queued (a live worker from another test would train it)."""

    def make(**params):
        job = launch(params={**PARAMS, **params})
        TrainingJob.objects.filter(pk=job.pk).update(state="running")
        return TrainingJob.objects.select_related("run", "owner").get(pk=job.pk)

    return make


def _config(job):
    from apps.training.datasource import load_arrays

    X, y, dataset = load_arrays(job)
    return TrainConfig(job.template, dict(job.params), device="cpu", seed=0, num_threads=1, X=X, y=y,
                       dataset=dataset or None)  # fmt: skip


def test_points_checkpoints_and_progress_land_through_the_process(writer, running_job):
    job = running_job()
    callbacks = PortalCallbacks(job)
    assert callbacks.mode == "process"
    result = train(_config(job), callbacks)
    callbacks.close()
    stored = TrainingJob.objects.get(pk=job.pk)
    assert stored.checkpoint_id is not None and stored.checkpoint_epoch == 3 and stored.progress == 1.0
    # The training side's job object has the writer's checkpoint fields (the runner uses them).
    assert (job.checkpoint_id, job.checkpoint_epoch, job.epochs_completed) == (stored.checkpoint_id, 3, 3)
    assert job.progress == 1.0  # what the runner's last live message shows
    steps = list(MetricPoint.objects.filter(run_id=job.run_id, key="train_loss").values_list("step", flat=True))
    assert sorted(steps) == list(range(1, len(result.history["steps"]) + 1))
    assert MetricPoint.objects.filter(run_id=job.run_id, key="epoch").count() == 3
    assert callbacks.flushes >= 3 and 0 < callbacks.writer_cpu_s < 5  # accounted to the job
    assert writer.proc.poll() is None  # long-lived: the next job reuses it


def test_thread_writer_when_configured(running_job, monkeypatch, settings):
    settings.TRAINING_WRITER = "thread"
    job = running_job()
    callbacks = PortalCallbacks(job)
    assert callbacks.mode == "thread"
    train(_config(job), callbacks)
    callbacks.close()
    assert job.checkpoint_epoch == 3 and TrainingJob.objects.get(pk=job.pk).checkpoint_id == job.checkpoint_id
    assert MetricPoint.objects.filter(run_id=job.run_id, key="epoch").count() == 3


def test_a_failed_write_is_raised_on_the_training_side(writer):
    sink = ProcessSink(job_id=987654)  # no such job: opening the session fails in the writer
    with pytest.raises(TrainingJob.DoesNotExist):
        sink.close()
    assert writer.alive  # one job's failure does not take the writer down


def test_close_after_a_failed_write_still_ends_the_session(writer, running_job):
    job = running_job()
    callbacks = PortalCallbacks(job)
    callbacks.sink.error = RuntimeError("the last write failed")  # as the reader thread would set it
    callbacks.buffer = [{"key": "train_loss", "value": 1.0, "step": 1, "timestamp": 0}]
    with pytest.raises(RuntimeError, match="the last write failed"):
        callbacks.close()
    assert callbacks.sink.done.wait(10) and callbacks.sink.id not in writer.sessions


def test_cancel_request_reaches_the_training_thread(writer, running_job):
    from apps.core.workers import redis_client
    from apps.training.services import CANCEL_KEY

    job = running_job(epochs=500)
    sink = ProcessSink(job.pk)
    redis_client().set(CANCEL_KEY.format(job.celery_task_id), 1, ex=60)
    deadline = time.monotonic() + 10
    while not sink.should_stop():
        assert time.monotonic() < deadline, "the cancel request never arrived"
        time.sleep(0.05)
    sink.close()


def test_sweep_trial_is_pruned_by_the_writer_process(writer, owner, running_job, monkeypatch):
    from apps.training import services  # the sweep_advance task is recorded, not sent: advanced by hand here

    space = {"lr": {"min": 0.0001, "max": 0.1, "log": True}}
    params = {"epochs": 3, "batch_size": 256, "layers": 1, "patience": 0}
    sweep = services.sweep_create(actor=owner, name="p", template="tabular-mlp-classifier", method="tpe",
                                space=space, params=params, max_trials=3, parallelism=1)  # fmt: skip
    for trial in range(2):  # two finished trials give the median pruner its reference
        assert runner.execute(sweep.jobs.get(trial_number=trial).pk) == "succeeded"
        services.sweep_advance(sweep_id=sweep.pk)
    third = sweep.jobs.get(trial_number=2)
    sink = ProcessSink(third.pk, prune=True)
    for epoch in (1, 2):  # far worse than both: pruned after the warm-up epoch
        sink.submit("progress", epoch, {"val_loss": 1e6, "step": epoch}, epoch / 3, None)
    deadline = time.monotonic() + 10
    while not sink.should_stop():
        assert time.monotonic() < deadline, "the pruner's stop never arrived"
        time.sleep(0.05)
    assert sink.close()["pruned_at"] == 2


def test_lost_writer_fails_open_jobs_and_the_next_job_gets_a_new_one(writer, running_job):
    job = running_job()
    sink = ProcessSink(job.pk)
    os.kill(writer.proc.pid, signal.SIGKILL)
    with pytest.raises(WriterLost, match="exited"):
        sink.close()
    assert not writer.alive
    replacement = WriterProcess.get()
    try:
        assert replacement is not writer and replacement.alive
    finally:
        replacement.shutdown()


def test_runner_resumes_when_the_writer_is_lost(writer, running_job, monkeypatch):
    """The writer dies after epoch 2's checkpoint: the job resumes from it in the same delivery."""
    job = running_job(epochs=4)
    TrainingJob.objects.filter(pk=job.pk).update(state="queued")
    original = PortalCallbacks.on_checkpoint
    killed = []

    def kill_after_second(self, epoch, step, state):
        original(self, epoch, step, state)
        if epoch == 2 and not killed:
            self.close()  # epoch 2's checkpoint is stored
            os.kill(WriterProcess._current.proc.pid, signal.SIGKILL)
            killed.append(WriterProcess._current)
            while WriterProcess._current.alive:
                time.sleep(0.01)
            raise WriterLost("the writer process exited (code -9)")

    monkeypatch.setattr(PortalCallbacks, "on_checkpoint", kill_after_second)
    monkeypatch.setattr(WriterProcess, "__init__", _with_test_env(WriterProcess.__init__))
    try:
        assert runner.execute(job.pk, hostname="w1") == "succeeded"
    finally:
        if WriterProcess._current is not None and WriterProcess._current.alive:
            WriterProcess._current.shutdown()
    job.refresh_from_db()
    assert job.attempts == 2 and job.epochs_completed == 4
    steps = list(MetricPoint.objects.filter(run_id=job.run_id, key="train_loss").values_list("step", flat=True))
    assert sorted(steps) == list(range(1, len(steps) + 1))  # no duplicates, no gaps
    assert "writer process was lost" in job.run.log_tail
    assert job.wall_s > 0 and job.cpu_s > 0


def _with_test_env(init):
    env = _process_env()

    def patched(self, env_=None):
        init(self, env=env)

    return patched


def test_killed_writer_in_a_live_worker_resumes_the_job(live_worker, owner):
    client = api_client_for(owner)
    params = {"epochs": 40, "batch_size": 8, "hidden_units": 8, "layers": 1, "patience": 0}
    body = client.post(JOBS, {"template": "tabular-mlp-classifier", "params": params, "seed": 7}, format="json")
    job_id = body.json()["id"]
    wait_for(job_id, lambda j: j.state == "running" and j.checkpoint_epoch >= 2, worker=live_worker)
    writers = [
        p
        for p in psutil.Process(live_worker.pid).children(recursive=True)
        if "apps.training.writer_main" in " ".join(p.cmdline())
    ]
    assert writers, "the worker trains without a writer process"
    os.kill(writers[0].pid, signal.SIGKILL)
    job = wait_for(job_id, lambda j: j.is_terminal, timeout=120, worker=live_worker)
    assert job.state == "succeeded", job.error
    assert job.attempts == 2 and job.epochs_completed == 40
    steps = list(MetricPoint.objects.filter(run_id=job.run_id, key="train_loss").values_list("step", flat=True))
    assert sorted(steps) == list(range(1, len(steps) + 1))
    assert MetricPoint.objects.filter(run_id=job.run_id, key="epoch").count() == 40
    assert "writer process was lost" in job.run.log_tail
