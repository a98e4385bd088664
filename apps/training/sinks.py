"""Where a job's portal writes run: inline, on a writer thread, or in the worker's writer process.

All three take the same operations in order (`points`, `checkpoint`, `progress`: the
`write_<op>` methods of `JobWriter`), report a cancel request through `should_stop()`, and give
the writer's summary back from `close()`. After a failed write nothing more is written (a later
checkpoint must not skip missing points); the error is raised on the training side at its next
call.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from django.db import connection

from apps.core.audit import acting_as
from apps.training.jobwriter import STOP_CHECK_EVERY_S, JobWriter


class InlineSink:
    """On the training thread (TRAINING_WRITER=inline: one connection, e.g. inside a test's transaction)."""

    def __init__(self, writer: JobWriter) -> None:
        self.writer = writer

    def submit(self, op: str, *args: Any) -> None:
        getattr(self.writer, f"write_{op}")(*args)

    def should_stop(self) -> bool:
        self.writer.poll_stop()
        return self.writer.stop

    def close(self) -> dict[str, Any]:
        return self.writer.summary()


class ThreadSink(threading.Thread):
    """On one writer thread, in FIFO order; it polls the cancel flag while it waits for work.

    The writer's Python shares the GIL with the training thread, so this costs the loop a few
    percent on short epochs: used where TRAINING_WRITER=thread switches the writer process off.
    """

    def __init__(self, writer: JobWriter) -> None:
        super().__init__(name=f"training-job-{writer.job.pk}-writer", daemon=True)
        self.writer = writer
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.start()

    def submit(self, op: str, *args: Any) -> None:
        if self.error is not None:
            raise self.error
        self.tasks.put((getattr(self.writer, f"write_{op}"), args))

    def should_stop(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.writer.stop

    def close(self) -> dict[str, Any]:
        self.tasks.put((None, ()))
        self.join()
        if self.error is not None:
            raise self.error
        return self.writer.summary()

    def run(self) -> None:
        try:
            with acting_as(self.writer.job.owner):  # the actor is per thread: set it here too
                self._loop()
        finally:
            connection.close()

    def _loop(self) -> None:
        while True:
            try:
                fn, args = self.tasks.get(timeout=STOP_CHECK_EVERY_S)
            except queue.Empty:
                fn, args = False, ()
            if fn is None:
                break
            if fn and self.error is None:
                try:
                    fn(*args)
                except BaseException as exc:  # surfaced in the training thread
                    self.error = exc
            self.writer.poll_stop()
