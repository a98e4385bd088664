"""A training job's portal writes: metric batches, checkpoints, progress and the cancel check.

`JobWriter` is what `PortalCallbacks` hands its I/O to; a sink (apps.training.sinks) decides
where it runs: on the training thread, on a writer thread, or in the worker's writer process.
It imports no torch, so the writer process stays small.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import psutil
from django.db import transaction

from apps.core import vault
from apps.experiments.services import run_log_batch, run_log_system_metrics, run_report_progress
from apps.experiments.validation import now_ms
from apps.training.engine.header import epoch_record
from apps.training.models import TrainingJob
from apps.training.services.flags import cancel_requested
from apps.training.services.states import job_publish

log = logging.getLogger(__name__)
STOP_CHECK_EVERY_S = 0.5
SYSTEM_METRICS_EVERY_S = 10.0
EPOCH_KEYS = ("val_loss", "val_acc", "val_f1", "val_rmse", "val_mae", "val_r2", "epoch_time_s")


class JobWriter:
    """Writes for one job, in the order it is asked to; keeps the job's checkpoint fields current."""

    def __init__(self, job: TrainingJob, *, pruner=None) -> None:
        self.job = job
        self.run = job.run
        self.pruner = pruner  # callable(epoch, metrics) -> bool, for sweep trials
        self.pruned_at: int | None = None
        self.stop = False
        self.flushes = 0
        self.last_stop_check = 0.0
        self.last_system = float("-inf")

    def summary(self) -> dict[str, Any]:
        """What the training side needs back at the end (the writer may live in another process)."""
        job = self.job
        return {
            "flushes": self.flushes,
            "pruned_at": self.pruned_at,
            "checkpoint_id": job.checkpoint_id,
            "checkpoint_epoch": job.checkpoint_epoch,
            "checkpoint_step": job.checkpoint_step,
            "epochs_completed": job.epochs_completed,
            "progress": job.progress,
            "eta_s": job.eta_s,
        }

    # --- metrics ---------------------------------------------------------------------------------
    def write_points(self, points: list[dict[str, Any]]) -> None:
        for start in range(0, len(points), 1000):
            run_log_batch(run=self.run, actor=self.job.owner, metrics=points[start : start + 1000])
            self.flushes += 1

    # --- cancel ----------------------------------------------------------------------------------
    def poll_stop(self) -> None:
        """At most every STOP_CHECK_EVERY_S: one Redis EXISTS."""
        now = time.monotonic()
        if not self.stop and now - self.last_stop_check >= STOP_CHECK_EVERY_S:
            self.last_stop_check = now
            self.stop = cancel_requested(self.job)

    # --- checkpoints -----------------------------------------------------------------------------
    def write_checkpoint(self, epoch: int, step: int, state: bytes, points: list[dict[str, Any]]) -> None:
        """The steps' points, the epoch's metrics and the checkpoint in one transaction.

        So a run resumed from this checkpoint has every point up to its step and none after.
        """
        points = points + _epoch_points(epoch, epoch_record(state, epoch), step)
        # Encrypt before the transaction: the job row stays locked only for the database writes.
        name, sealed = vault.blob_write(io.BytesIO(state), purpose="training.checkpoint")
        try:
            with transaction.atomic():
                # The job row first: a concurrent cancel locks it before it writes its audit entry,
                # and so must we (audit entries are hash-chained), or the two deadlock.
                old = (
                    TrainingJob.objects.select_for_update(of=("self",))
                    .filter(pk=self.job.pk)
                    .values_list("checkpoint_id", "checkpoint__storage_key")
                    .get()
                )
                self.write_points(points)
                blob = vault.blob_record(name, sealed, purpose="training.checkpoint")
                TrainingJob.objects.filter(pk=self.job.pk).update(
                    checkpoint=blob, checkpoint_epoch=epoch, checkpoint_step=step, epochs_completed=epoch
                )
                if old[0] is not None:
                    vault.blob_delete_superseded(*old)
        except BaseException:
            vault.blob_discard(name)
            raise
        self.job.checkpoint_id, self.job.checkpoint_epoch, self.job.checkpoint_step = blob.pk, epoch, step
        self.job.epochs_completed = epoch

    # --- progress --------------------------------------------------------------------------------
    def write_progress(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        job = self.job
        job.progress, job.eta_s = float(min(max(progress, 0.0), 1.0)), eta_s
        with transaction.atomic():  # one commit for both rows
            TrainingJob.objects.filter(pk=job.pk).update(progress=job.progress, eta_s=eta_s)
            run_report_progress(run=self.run, actor=job.owner, progress=job.progress)
        if time.monotonic() - self.last_system >= SYSTEM_METRICS_EVERY_S:
            self.last_system = time.monotonic()
            _system_metrics(self.run, job.owner, int(metrics.get("step", 0)))
        job_publish(job)
        if self.pruner is not None and self.pruner(epoch, metrics):
            self.pruned_at = epoch
            self.stop = True


def _epoch_points(epoch: int, record: dict[str, Any], step: int) -> list[dict[str, Any]]:
    ts = now_ms()
    points = [{"key": "epoch", "value": float(epoch), "step": step, "timestamp": ts}]
    points += [
        {"key": key, "value": float(record[key]), "step": step, "timestamp": ts}
        for key in EPOCH_KEYS
        if _number(record.get(key))
    ]
    if _number(record.get("train_loss")):
        points.append({"key": "epoch_train_loss", "value": float(record["train_loss"]), "step": step, "timestamp": ts})
    return points


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _system_metrics(run, actor, step: int) -> None:
    try:
        run_log_system_metrics(
            run=run,
            actor=actor,
            cpu_percent=psutil.cpu_percent(None),
            memory_percent=psutil.virtual_memory().percent,
            step=step,
        )
    except Exception:  # resource figures are nice to have; never fail training for them
        log.debug("system metrics skipped", exc_info=True)
