"""Shadow traffic: copies of live requests answered by shadow routes off the request path.

`submit()` puts a copy on a bounded queue (SERVING_SHADOW_QUEUE) and returns at once; a full queue
drops the copy and counts it (`shadow_dropped`). One daemon worker thread per serving process
(`start()`, from the ASGI entry point) runs the shadow route's session on the same feeds, compares
its outputs with the live answer and adds to the shadow route's traffic window: `shadow_compared`
rows, `shadow_agreed` rows (the same argmax per row for 2-D outputs with more than one column,
else |difference| <= AGREE_TOLERANCE) and the sum of per-row mean absolute differences. Its own
requests, errors and latency are counted like a live route's (mode "shadow"); sampled outputs and
every failure are logged. Nothing here can slow or fail the live answer: the request thread only
enqueues, and every failure stays inside the worker.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import close_old_connections

from apps.serving.inference import logbook
from apps.serving.inference.cache import RoutePlan
from apps.serving.inference.runtime import cached_session, session_for

log = logging.getLogger(__name__)
AGREE_TOLERANCE = 1e-3


@dataclass
class ShadowJob:
    endpoint_id: int
    route: RoutePlan
    feeds: dict
    live: dict  # output name -> array of the live answer
    rows: int
    sample: bool
    prediction_id: str
    key: str | None
    caller_id: int | None
    token_prefix: str
    inputs: object


class _Worker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queue: queue.Queue | None = None
        self.pid: int | None = None

    def jobs(self) -> queue.Queue:
        if self.queue is None:
            with self.lock:
                if self.queue is None:
                    self.queue = queue.Queue(maxsize=settings.SERVING_SHADOW_QUEUE)
        return self.queue

    def start(self) -> None:
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            threading.Thread(target=self._run, args=(self.pid,), name="shadow-traffic", daemon=True).start()

    def _run(self, pid: int) -> None:
        jobs = self.jobs()
        while self.pid == pid:
            try:
                job = jobs.get(timeout=1.0)
            except queue.Empty:
                continue
            try:
                run(job)
            except Exception:  # never let one copy stop the worker
                log.exception("shadow copy failed outside the model")
            finally:
                close_old_connections()


WORKER = _Worker()


def start() -> None:
    WORKER.start()


def stop() -> None:
    """Stop the worker thread of this process (tests run copies with `drain()`)."""
    WORKER.pid = None


def submit(job: ShadowJob) -> bool:
    """Queue a copy; False (counted as dropped) when the queue is full."""
    try:
        WORKER.jobs().put_nowait(job)
        return True
    except queue.Full:
        logbook.record_shadow_dropped(
            endpoint_id=job.endpoint_id, route=job.route.name, version_id=job.route.version_id
        )
        return False


def drain() -> int:
    """Run every queued copy in the calling thread (tests); returns how many ran."""
    jobs, done = WORKER.jobs(), 0
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            return done
        run(job)
        done += 1


def compare(live: dict, shadow: dict) -> tuple[int, int, float]:
    """(rows compared, rows that agree, sum of per-row mean absolute differences) on the first
    output both answers have; shapes that cannot be compared agree on nothing."""
    name = next((n for n in live if n in shadow), None)
    if name is None:
        rows = len(next(iter(live.values()))) if live else 0
        return rows, 0, 0.0
    a, b = np.asarray(live[name]), np.asarray(shadow[name])
    rows = a.shape[0] if a.ndim else 1
    if a.shape != b.shape or a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
        return rows, 0, 0.0
    a2 = a.reshape(rows, -1).astype(np.float64)
    b2 = b.reshape(rows, -1).astype(np.float64)
    diff = np.abs(a2 - b2)
    if a.ndim == 2 and a.shape[1] > 1:
        agreed = int((a2.argmax(axis=1) == b2.argmax(axis=1)).sum())
    else:
        agreed = int((diff <= AGREE_TOLERANCE).all(axis=1).sum())
    return rows, agreed, float(diff.mean(axis=1).sum())


def run(job: ShadowJob) -> None:
    """Answer one copy with the shadow route and record what it did."""
    route = job.route
    started = time.perf_counter()
    status, error, outputs = 200, "", None
    try:
        model = cached_session(route.version_id) or session_for(route.version)
        outputs = model.run(job.feeds)
    except Exception as exc:  # the shadow's failure, counted and logged; the live answer is long gone
        status, error = 500, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    latency_ms = (time.perf_counter() - started) * 1000
    entry = None
    if job.sample or status >= 500:
        entry = logbook.entry_of(
            prediction_id=job.prediction_id,
            key=job.key,
            caller_id=job.caller_id,
            token_prefix=job.token_prefix,
            rows=job.rows,
            inputs=job.inputs,
            outputs=outputs,
        )
    logbook.record(
        endpoint_id=job.endpoint_id,
        route=route.name,
        mode="shadow",
        version_id=route.version_id,
        rows=job.rows,
        latency_ms=latency_ms,
        status=status,
        error=error,
        entry=entry,
    )
    if outputs is not None:
        compared, agreed, abs_diff = compare(job.live, outputs)
        logbook.record_shadow(
            endpoint_id=job.endpoint_id,
            route=route.name,
            version_id=route.version_id,
            compared=compared,
            agreed=agreed,
            abs_diff_sum=abs_diff,
        )
