from __future__ import annotations

import logging

from celery import shared_task

from apps.core.audit import verify_chain
from apps.core.realtime import group_name, send_now
from apps.core.recovery import recover_all

log = logging.getLogger(__name__)


@shared_task(name="core.ping")
def ping(user_id: int, nonce: str) -> dict:
    """Round trip used by health checks and tests: worker -> channel layer -> the user's sockets."""
    if not isinstance(user_id, int) or not isinstance(nonce, str) or len(nonce) > 100:
        raise ValueError("ping needs an integer user id and a short nonce string")
    message = {"type": "notification", "kind": "pong", "nonce": nonce}
    send_now(group_name("user", user_id), message)
    return message


@shared_task(name="core.audit_verify")
def audit_verify() -> dict:
    report = verify_chain()
    if not report.ok:
        log.error("audit chain broken: %s", report.reason)
    return report.as_dict()


@shared_task(name="core.recover_jobs")
def recover_jobs() -> dict:
    """Re-dispatch or resume background jobs whose message or worker is gone (apps/core/recovery.py)."""
    return recover_all()
