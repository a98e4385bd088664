from __future__ import annotations

import logging

from celery import shared_task

from apps.core import keyring_admin
from apps.core.audit_chain import chain_check_and_anchor
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
    """Hourly (beat): verify the audit chain (a full walk once a day, otherwise what is new), anchor
    its head in a signed checkpoint, and raise the audit_chain alert while it is broken."""
    report = chain_check_and_anchor()
    return {k: report.as_dict()[k] for k in ("ok", "status", "mode", "checked", "verified_through", "check")}


@shared_task(name="core.recover_jobs")
def recover_jobs() -> dict:
    """Re-dispatch or resume background jobs whose message or worker is gone (apps/core/recovery.py)."""
    return recover_all()


@shared_task(name="core.keys_rotate", acks_late=True)
def keys_rotate(rotation_id: int) -> dict:
    """A key rotation a platform admin started in the portal (apps/core/keyring_admin.py)."""
    if not isinstance(rotation_id, int):
        raise ValueError("keys_rotate takes a KeyRotation id")
    rotation = keyring_admin.key_rotation_run(rotation_id=rotation_id)
    return {"rotation": rotation.pk, "state": rotation.state, "active_kid": rotation.active_kid}
