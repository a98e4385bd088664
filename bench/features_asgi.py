"""ASGI app for bench/features_online.py: the portal's own `portal.asgi.application` (the features
fast path routed ahead of Django, the start-up heap frozen by `apps.core.heap.settle`), so the
benchmark serves exactly what production serves. Benchmarks only.

With FEATURES_BENCH_DIAG=1 the server also records what can stall the event loop and answers it as
JSON on `GET /bench/diagnostics` (bench/features_online.py --diagnose reads it before stopping):
- every garbage collection that took over 0.5 ms (generation, milliseconds, objects collected);
- every fast-path request that took over 2 ms inside the server (start offset, wall, CPU and
  run-queue milliseconds, i.e. running, descheduled, or waiting on Redis);
- how many objects `gc.freeze()` holds and the collection counts per generation.
"""

from __future__ import annotations

import gc
import json
import os
import time

from portal.asgi import application  # noqa: E402

DIAG = os.environ.get("FEATURES_BENCH_DIAG")
T0 = time.monotonic()
_gc_started = [0.0]
_stats = {"gc_over_0_5ms": [], "gc_counts": [0, 0, 0], "slow_requests": [], "requests": 0}


def _run_queue_ns() -> int:
    """Nanoseconds this thread has spent runnable but not running (/proc/thread-self/schedstat)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stat:
            return int(stat.read().split()[1])
    except OSError:
        return 0


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
        return
    took = (time.perf_counter() - _gc_started[0]) * 1000
    _stats["gc_counts"][info["generation"]] += 1
    if took > 0.5:
        _stats["gc_over_0_5ms"].append(
            {
                "at_s": round(time.monotonic() - T0, 2),
                "generation": info["generation"],
                "ms": round(took, 2),
                "collected": info["collected"],
            }  # fmt: skip
        )


async def _diagnostics(send) -> None:
    body = json.dumps({**_stats, "frozen_objects": gc.get_freeze_count(), "tracked_objects": len(gc.get_objects()),
                       "gc_thresholds": gc.get_threshold()}).encode()  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def _timed(scope, receive, send):
    if scope["type"] != "http":
        return await application(scope, receive, send)
    if scope["path"] == "/bench/diagnostics":
        return await _diagnostics(send)
    started, cpu, queued = time.perf_counter(), time.thread_time(), _run_queue_ns()
    try:
        return await application(scope, receive, send)
    finally:
        took = (time.perf_counter() - started) * 1000
        _stats["requests"] += 1
        if took > 2:
            # cpu_ms: this thread ran; runnable_wait_ms: it was ready but the kernel ran something
            # else on its core (the scheduler); the rest of ms: waiting on Redis or other requests.
            _stats["slow_requests"].append({"at_s": round(time.monotonic() - T0, 2), "ms": round(took, 2),
                                            "cpu_ms": round((time.thread_time() - cpu) * 1000, 2),
                                            "runnable_wait_ms": round((_run_queue_ns() - queued) / 1e6, 2)})  # fmt: skip


if DIAG:
    gc.callbacks.append(_on_gc)
    app = _timed
else:
    app = application
