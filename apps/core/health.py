"""Readiness of each part the portal needs, for /healthz and the launcher."""

from __future__ import annotations

import time
import uuid

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from apps.core.audit_chain import chain_status
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


def _audit_chain() -> dict:
    """The audit chain's state without walking the table: the last verified state plus what is new
    (apps.core.audit_chain.chain_status). "broken" and "unverified" degrade, never fail, /healthz:
    the portal keeps serving so that people can investigate."""
    timed = _timed(lambda: chain_status())
    report = timed["detail"]
    if timed["status"] != "ok":  # could not check (e.g. the key ring is unreadable)
        return {"status": "unverified", "ms": timed["ms"], "detail": report}
    if report.ok:
        detail = f"verified through entry {report.verified_through}"
        detail += f"; {report.pending} newer entries not checked yet" if report.pending else ""
    else:  # /healthz is public: what broke where is for auditors (the audit page, audit_verify)
        detail = f"{report.check}: see the audit page or run manage.py audit_verify"
    return {
        "status": report.status,
        "ms": timed["ms"],
        "detail": detail,
        "verified_through": report.verified_through,
        "last_checkpoint_seq": report.last_checkpoint_seq,
        "last_full_at": report.last_full_at,
    }


def health_report() -> dict:
    checks = {"database": _timed(_database), "broker": _timed(_broker), "channel_layer": _timed(_channel_layer)}
    workers = _timed(workers_by_queue)
    queues = workers["detail"] if workers["status"] == "ok" else {}
    ok = all(c["status"] == "ok" for c in checks.values())
    audit_chain = _audit_chain() if checks["database"]["status"] == "ok" else {"status": "unverified"}
    return {
        "status": "ok" if ok else "error",
        "checks": checks,
        "workers": {"status": workers["status"], "queues": queues},
        "audit_chain": audit_chain,
        # Parts that are not right but do not stop the portal serving (the status stays "ok", 200).
        "degraded": [] if audit_chain["status"] == "ok" else ["audit_chain"],
    }
