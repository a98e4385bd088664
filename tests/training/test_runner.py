"""The task body run in-process: training, metrics, checkpoints, export, registration, failures."""

from __future__ import annotations

import pytest

from apps.experiments.models import MetricPoint
from apps.training import runner
from apps.training.models import TrainingJob
from tests.training.conftest import TINY

pytestmark = pytest.mark.django_db


def steps_of(run, key="train_loss"):
    return list(MetricPoint.objects.filter(run=run, key=key).order_by("step").values_list("step", flat=True))


def test_job_trains_exports_and_registers(launch):
    job = launch()
    assert runner.execute(job.pk, hostname="w1") == "succeeded"
    job.refresh_from_db()
    assert job.state == "succeeded" and job.progress == 1.0 and job.worker == "w1" and job.attempts == 1
    assert job.model_version is not None
    version = job.model_version
    assert version.seed == 0 and version.run_id == str(job.run_id)
    assert version.training_data_digest and version.package_versions["torch"]
    assert job.result["onnx"]["parity_max_abs_diff"] < 1e-4 and job.result["onnx"]["exporter"] == "torchscript"
    assert 1 in job.result["onnx"]["batch_sizes_checked"]  # a batch size other than the traced one
    assert job.checkpoint is not None and job.checkpoint_epoch == 2
    steps = steps_of(job.run)
    assert steps == list(range(1, len(steps) + 1)) and steps
    assert MetricPoint.objects.filter(run=job.run, key="val_acc").count() == 2
    assert job.wall_s > 0 and job.cpu_s > 0 and float(job.cost) >= 0
    job.run.refresh_from_db()
    assert job.run.status == "finished"


def test_same_seed_same_metrics(launch):
    a, b = launch(seed=7), launch(seed=7)
    runner.execute(a.pk)
    runner.execute(b.pk)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.metrics == b.metrics and a.metrics


def test_parity_failure_fails_the_job(launch, monkeypatch):
    monkeypatch.setattr(runner, "PARITY_TOLERANCE", -1.0)  # the real check, with a bound nothing can meet
    job = launch()
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert "parity check failed" in job.error and job.model_version is None
    job.run.refresh_from_db()
    assert job.run.status == "failed" and "parity" in job.run.log_tail


def test_cancel_flag_stops_between_steps(launch, monkeypatch):
    job = launch(params={**TINY, "epochs": 50})
    monkeypatch.setattr("apps.training.jobwriter.cancel_requested", lambda job: True)
    assert runner.execute(job.pk) == "cancelled"
    job.refresh_from_db()
    assert job.state == "cancelled" and job.model_version is None and job.epochs_completed == 0


def test_max_runtime_enforced(launch, monkeypatch):
    job = launch(max_runtime_s=1)
    TrainingJob.objects.filter(pk=job.pk).update(state="queued")
    from datetime import timedelta

    from django.utils import timezone

    TrainingJob.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=5))
    assert runner.execute(job.pk) == "failed"
    job.refresh_from_db()
    assert "Max runtime" in job.error


def test_resume_after_lost_worker_has_one_point_per_step(launch):
    """Simulate a worker lost mid-epoch-3: resume from epoch 2's checkpoint, no duplicate steps."""
    from apps.training import callbacks

    params = {"epochs": 4, "batch_size": 64, "hidden_units": 8, "layers": 1, "patience": 0}
    reference = launch(params=params, seed=3)
    runner.execute(reference.pk)
    reference.refresh_from_db()

    job = launch(params=params, seed=3)
    original = callbacks.PortalCallbacks.on_step

    class WorkerLost(BaseException):
        pass

    def dying(self, step, epoch, metrics):
        original(self, step, epoch, metrics)
        if epoch == 3 and step == self.job.checkpoint_step + 2:
            self.flush()  # points after the checkpoint reached the database before the crash
            raise WorkerLost

    callbacks.PortalCallbacks.on_step = dying
    try:
        with pytest.raises(WorkerLost):
            runner.execute(job.pk, hostname="w1")
    finally:
        callbacks.PortalCallbacks.on_step = original
    job.refresh_from_db()
    assert job.state == "running" and job.checkpoint_epoch == 2
    assert runner.execute(job.pk, hostname="w2") == "succeeded"
    job.refresh_from_db()
    assert job.attempts == 2 and job.worker == "w2"
    steps = steps_of(job.run)
    assert steps == steps_of(reference.run)
    assert steps == list(range(1, len(steps) + 1))
    assert job.metrics == reference.metrics
    assert MetricPoint.objects.filter(run=job.run, key="epoch").count() == 4
