"""The engine's callbacks inside a worker: batched metrics, checkpoints to the vault, progress, cancel.

The training thread only buffers and hands operations to a sink (apps.training.sinks); the
writes themselves are `JobWriter`'s (apps.training.jobwriter).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from apps.experiments.validation import now_ms
from apps.training.engine.callbacks import Callbacks
from apps.training.jobwriter import JobWriter
from apps.training.models import TrainingJob
from apps.training.sinks import InlineSink, ThreadSink
from apps.training.writer_process import ProcessSink

FLUSH_EVERY_S = 0.5
FLUSH_MAX_POINTS = 800  # under the experiments API's 1,000 points per batch
PROGRESS_EVERY_S = 1.0  # job row, run progress and broadcast at most this often (the last one always)


class PortalCallbacks(Callbacks):
    """Buffers step metrics and flushes them every FLUSH_EVERY_S (or FLUSH_MAX_POINTS points).

    A checkpoint flushes the buffer, logs the epoch's metrics and stores the checkpoint in one
    transaction, so a run resumed from that checkpoint has every point up to its step and none after.
    In workers the database, vault, Redis and broadcast work runs in the worker's writer process
    (apps.training.writer_process), so the training thread only appends to a list and reads a flag.
    """

    def __init__(self, job: TrainingJob, *, pruner=None) -> None:
        self.job = job
        self.run = job.run
        self.run.refresh_from_db(fields=["status"])  # progress messages carry it (the runner moved it)
        self.buffer: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        self.pruner = pruner  # callable(epoch, metrics) -> bool, for sweep trials
        self.pruned_at: int | None = None
        self.flushes = 0
        self.writer_cpu_s = 0.0
        self.last_progress = float("-inf")
        # settings.TRAINING_WRITER: "process" in workers, "thread" to keep the writes in this
        # process, "inline" on the training thread (one database connection, as in a test transaction).
        self.mode = settings.TRAINING_WRITER
        if self.mode == "process":
            self.sink = ProcessSink(job.pk, prune=pruner is not None)  # it builds its own pruner
        else:
            writer = JobWriter(job, pruner=pruner)
            self.sink = ThreadSink(writer) if self.mode == "thread" else InlineSink(writer)

    def close(self) -> None:
        """Write what is buffered, wait for the writer, and raise its error if it had one."""
        try:
            self.flush()  # raises the writer's earlier error, if it had one...
        finally:
            summary = self.sink.close()  # ...but the writer session ends either way
        self.flushes, self.pruned_at = summary.get("flushes", 0), summary.get("pruned_at")
        self.writer_cpu_s = float(summary.get("writer_cpu_s", 0.0))  # CPU spent outside this process
        # The writer may have been another process: its view of the job is the current one.
        fields = ["progress", "eta_s"]
        if summary.get("checkpoint_id") is not None:
            fields += ["checkpoint_id", "checkpoint_epoch", "checkpoint_step", "epochs_completed"]
        for field in fields:
            if field in summary:
                setattr(self.job, field, summary[field])

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
            self.sink.submit("points", points)

    # --- cancel ----------------------------------------------------------------------------------
    def should_stop(self) -> bool:
        return self.sink.should_stop()

    # --- checkpoints -----------------------------------------------------------------------------
    def on_checkpoint(self, epoch: int, step: int, state: bytes) -> None:
        points, self.buffer = self.buffer, []
        self.last_flush = time.monotonic()
        self.sink.submit("checkpoint", epoch, step, state, points)

    # --- progress --------------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, metrics: dict[str, float], progress: float, eta_s: float | None) -> None:
        now = time.monotonic()
        if self.pruner is None and progress < 1.0 and now - self.last_progress < PROGRESS_EVERY_S:
            return  # short epochs: the next update is at most a second away
        self.last_progress = now
        self.sink.submit("progress", epoch, dict(metrics), progress, eta_s)
