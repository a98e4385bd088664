"""The engine's callbacks inside a worker: batched metrics, checkpoints to the vault, progress, cancel."""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from typing import Any

import psutil
from django.db import connection, transaction

from apps.core import vault
from apps.experiments.services import run_log_batch, run_log_system_metrics, run_report_progress
from apps.experiments.validation import now_ms
from apps.training import services
from apps.training.engine.callbacks import Callbacks
from apps.training.engine.checkpoint import read_header
from apps.training.models import TrainingJob

log = logging.getLogger(__name__)
FLUSH_EVERY_S = 0.5
FLUSH_MAX_POINTS = 800  # under the experiments API's 1,000 points per batch
STOP_CHECK_EVERY_S = 0.5
PROGRESS_EVERY_S = 1.0  # job row, run progress and broadcast at most this often (the last one always)
SYSTEM_METRICS_EVERY_S = 10.0
EPOCH_KEYS = ("val_loss", "val_acc", "val_f1", "val_rmse", "val_mae", "val_r2", "epoch_time_s")


BACKGROUND = True  # tests inside a wrapping transaction switch the writer thread off


class _Writer(threading.Thread):
    """Does the portal's I/O off the training thread, in order; polls the cancel flag meanwhile.

    FIFO order keeps a checkpoint's transaction after every flush of the steps before it. After
    a failure nothing else is written (a later checkpoint must not skip missing points); the
    error is raised in the training thread at its next callback.
    """

    def __init__(self, owner: PortalCallbacks) -> None:
        super().__init__(name=f"training-job-{owner.job.pk}-writer", daemon=True)
        self.owner = owner
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.closing = False

    def submit(self, fn, *args) -> None:
        if self.error is not None:
            raise self.error
        self.tasks.put((fn, args))

    def run(self) -> None:
        from apps.core.audit import acting_as

        try:
            with acting_as(self.owner.job.owner):  # the actor is per thread: set it here too
                self._loop()
        finally:
            connection.close()

    def _loop(self) -> None:
        while True:
            try:
                item = self.tasks.get(timeout=STOP_CHECK_EVERY_S)
            except queue.Empty:
                item = None
            if item is not None and item[0] is None:
                break
            if item is not None and self.error is None:
                try:
                    item[0](*item[1])
                except BaseException as exc:  # surfaced in the training thread
                    self.error = exc
            self.owner.poll_stop()

    def close(self) -> None:
        self.tasks.put((None, ()))
        self.join()


class PortalCallbacks(Callbacks):
    """Buffers step metrics and flushes them every FLUSH_EVERY_S (or FLUSH_MAX_POINTS points).

    A checkpoint flushes the buffer, logs the epoch's metrics and stores the checkpoint in one
    transaction, so a run resumed from that checkpoint has every point up to its step and none after.
    With `background` (the default in workers) the database, vault, Redis and broadcast work runs
    on one writer thread so the training thread only appends to a list and reads a flag.
    """

    def __init__(self, job: TrainingJob, *, pruner=None, background: bool | None = None) -> None:
        self.job = job
        self.run = job.run
        self.run.refresh_from_db(fields=["status"])  # progress messages carry it (the runner moved it)
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.last_stop_check = 0.0
        self.stop = False
        self.pruner = pruner  # callable(epoch, metrics) -> bool, for sweep trials
        self.pruned_at: int | None = None
        self.flushes = 0
        self.last_progress = self.last_system = float("-inf")
        self.writer = _Writer(self) if (BACKGROUND if background is None else background) else None
        if self.writer is not None:
            self.writer.start()

    def _do(self, fn, *args) -> None:
        if self.writer is None:
            fn(*args)
        else:
            self.writer.submit(fn, *args)

    def close(self) -> None:
        """Write what is buffered, wait for the writer, and raise its error if it had one."""
        points, self.buffer = self.buffer, []
        if points:
            self._do(self._write_points, points)
        if self.writer is not None:
            self.writer.close()
            if self.writer.error is not None:
                raise self.writer.error

    # --- metrics ---------------------------------------------------------------------------------
    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        ts = now_ms()
        append = self.buffer.append
        for key, value in metrics.items():
            append({"key": key, "value": value, "step": step, "timestamp": ts})
        if len(self.buffer) >= FLUSH_MAX_POINTS or time.monotonic() - self.last_flush >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        points, self.buffer = self.buffer, []
        self.last_flush = time.monotonic()
        if points:
            self._do(self._write_points, points)

    def _write_points(self, points: list[dict[str, Any]]) -> None:
        for start in range(0, len(points), 1000):
            run_log_batch(run=self.run, metrics=points[start : start + 1000])
            self.flushes += 1

    # --- cancel ----------------------------------------------------------------------------------
    def should_stop(self) -> bool:
        if self.writer is None:
            self.poll_stop()
        elif self.writer.error is not None:
            raise self.writer.error
        return self.stop

    def poll_stop(self) -> None:
        """At most every STOP_CHECK_EVERY_S: one Redis EXISTS (the writer thread does it when on)."""
        now = time.monotonic()
        if not self.stop and now - self.last_stop_check >= STOP_CHECK_EVERY_S:
            self.last_stop_check = now
            self.stop = services.cancel_requested(self.job)

    # --- checkpoints -----------------------------------------------------------------------------
    def on_checkpoint(self, epoch: int, step: int, state: bytes) -> None:
        points, self.buffer = self.buffer, []
        self.last_flush = time.monotonic()
        self._do(self._write_checkpoint, epoch, step, state, points)

    def _write_checkpoint(self, epoch: int, step: int, state: bytes, points: list[dict[str, Any]]) -> None:
        header = read_header(state)
        record = next((h for h in reversed(header["loop"]["history"]) if h["epoch"] == epoch), {})
        ts = now_ms()
        epoch_points = [{"key": "epoch", "value": float(epoch), "step": step, "timestamp": ts}]
        epoch_points += [
            {"key": key, "value": float(record[key]), "step": step, "timestamp": ts}
            for key in EPOCH_KEYS
            if isinstance(record.get(key), int | float)
        ]
        if isinstance(record.get("train_loss"), int | float):
            epoch_points.append({"key": "epoch_train_loss", "value": float(record["train_loss"]), "step": step,
                                 "timestamp": ts})  # fmt: skip
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
                self._write_points(points + epoch_points)
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
    def on_epoch_end(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        now = time.monotonic()
        if self.pruner is None and progress < 1.0 and now - self.last_progress < PROGRESS_EVERY_S:
            return  # short epochs: the next update is at most a second away
        self.last_progress = now
        self._do(self._write_progress, epoch, dict(metrics), progress, eta_s)

    def _write_progress(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        job = self.job
        job.progress, job.eta_s = float(min(max(progress, 0.0), 1.0)), eta_s
        with transaction.atomic():  # one commit for both rows
            TrainingJob.objects.filter(pk=job.pk).update(progress=job.progress, eta_s=eta_s)
            run_report_progress(run=self.run, progress=job.progress)
        if time.monotonic() - self.last_system >= SYSTEM_METRICS_EVERY_S:
            self.last_system = time.monotonic()
            _system_metrics(self.run, int(metrics.get("step", 0)))
        services.publish(job)
        if self.pruner is not None and self.pruner(epoch, metrics):
            self.pruned_at = epoch
            self.stop = True


def _system_metrics(run, step: int) -> None:
    try:
        run_log_system_metrics(
            run=run, cpu_percent=psutil.cpu_percent(None), memory_percent=psutil.virtual_memory().percent, step=step
        )
    except Exception:  # resource figures are nice to have; never fail training for them
        log.debug("system metrics skipped", exc_info=True)
