"""Readiness of each part the portal needs, for /healthz and the launcher."""

from __future__ import annotations

import time
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from apps.core.workers import redis_client, workers_by_queue


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check()
        status = "ok"
    except Exception as exc:  # a health probe reports failures, it never raises them
        detail, status = f"{type(exc).__name__}: {exc}", "error"
    return {"status": status, "ms": round((time.perf_counter() - started) * 1000, 1), "detail": detail}


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _broker() -> str:
    redis_client().ping()
    return "redis"


def _channel_layer() -> str:
    layer = get_channel_layer()

    async def round_trip():
        channel = await layer.new_channel("healthz.")
        await layer.send(channel, {"type": "health.check", "nonce": uuid.uuid4().hex})
        await layer.receive(channel)

    async_to_sync(round_trip)()
    return type(layer).__name__


def health_report() -> dict:
    checks = {"database": _timed(_database), "broker": _timed(_broker), "channel_layer": _timed(_channel_layer)}
    workers = _timed(workers_by_queue)
    queues = workers["detail"] if workers["status"] == "ok" else {}
    ok = all(c["status"] == "ok" for c in checks.values())
    return {
        "status": "ok" if ok else "error",
        "checks": checks,
        "workers": {"status": workers["status"], "queues": queues},
    }
