"""Explicit audit events (sensitive reads, logins, approvals), the actor of automated work, and the
chain verifier's entry points (the chain itself: apps.core.audit_keys and apps.core.audit_chain)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from auditlog.context import auditlog_value, set_actor
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models

from apps.core.audit_chain import ChainReport, chain_status, verify_chain
from apps.core.models import AuditEntry

__all__ = [
    "SYSTEM_USERNAME",
    "ChainReport",
    "acting_as",
    "attribute_request_to",
    "audit_event",
    "chain_status",
    "client_ip",
    "system_user",
    "verify_chain",
]

SYSTEM_USERNAME = "system"


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_event(
    *,
    actor,
    event: str,
    obj: models.Model | None = None,
    data: dict | None = None,
    request=None,
    repr_text: str | None = None,
) -> AuditEntry:
    """Record an access-type event such as `artifact.download`, `pii.view` or `login.failed`."""
    target = obj if obj is not None else actor
    content_type = ContentType.objects.get_for_model(target if target is not None else get_user_model())
    actor_obj = actor if getattr(actor, "pk", None) else None
    return AuditEntry.objects.create(
        content_type=content_type,
        object_pk=str(getattr(target, "pk", "") or ""),
        object_id=getattr(target, "pk", None) if isinstance(getattr(target, "pk", None), int) else None,
        object_repr=repr_text or (str(target) if target is not None else ""),
        action=AuditEntry.Action.ACCESS,
        actor=actor_obj,
        actor_email=getattr(actor_obj, "email", None),
        remote_addr=client_ip(request),
        additional_data={"event": event, **(data or {})},
    )


def system_user():
    """The account that automated work (commands, schedules) acts as when no person does."""
    user, created = get_user_model().objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"is_active": False, "first_name": "System"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def attribute_request_to(user) -> None:
    """Name `user` as the actor of the changes the current request makes.

    auditlog's middleware reads `request.user` before the view runs; a token caller is only known
    once DRF authenticates it inside the view, so without this every change made with
    `Authorization: Token` was recorded with no actor. The authentication class calls this when
    it has found the token's user. The middleware's context is per request, so this touches no
    other request; outside a request (no context) and when an actor is already named it does nothing.
    """
    try:
        context = auditlog_value.get()
    except LookupError:
        return
    if context.get("actor") is None and getattr(user, "pk", None) and user.is_authenticated:
        context["actor"] = user


@contextlib.contextmanager
def acting_as(user) -> Iterator[None]:
    """Attribute every change made inside the block to `user` (tasks, commands)."""
    with set_actor(user):
        yield
