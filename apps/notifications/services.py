"""Writes: `notify` (any app tells users something), mark read.

The rows are written in the caller's transaction; the live push to each recipient's open pages
(the `user.<pk>` group that `NotificationsConsumer` joins) and the e-mail leave only after it
commits, so nobody hears about a promotion that was rolled back. A failed e-mail is logged and
never fails the write that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import models, transaction
from django.utils import timezone

from apps.core.errors import NotFound
from apps.core.permissions import is_active_user
from apps.core.realtime import group_name, send_now
from apps.notifications.models import Notification
from apps.notifications.selectors import unread_count

log = logging.getLogger(__name__)

TITLE_MAX = Notification._meta.get_field("title").max_length
URL_MAX = Notification._meta.get_field("url").max_length


def notify(
    *,
    recipients: Iterable,
    kind: str,
    title: str,
    body: str = "",
    url: str = "",
    obj: models.Model | None = None,
    email: bool = True,
) -> list[Notification]:
    """One notification per active recipient (duplicates and inactive users skipped), pushed live
    and e-mailed after commit. Returns the rows written."""
    seen: set = set()
    users = []
    for user in recipients:
        if user is None or user.pk in seen or not is_active_user(user):
            continue
        seen.add(user.pk)
        users.append(user)
    if not users:
        return []
    object_type = f"{obj._meta.app_label}.{obj._meta.model_name}" if obj is not None else ""
    object_id = str(obj.pk) if obj is not None and obj.pk is not None else ""
    now = timezone.now()
    rows = [
        Notification(
            recipient=user,
            kind=kind,
            title=title[:TITLE_MAX],
            body=body,
            url=url[:URL_MAX],
            object_type=object_type,
            object_id=object_id,
            created_at=now,
        )
        for user in users
    ]
    created = Notification.objects.bulk_create(rows)
    if any(n.pk is None for n in created):  # backends without RETURNING: read them back
        created = list(Notification.objects.filter(recipient__in=users, kind=kind, created_at=now))
    transaction.on_commit(lambda: _deliver(created, users, email=email))
    return created


def _deliver(created: list[Notification], users: list, *, email: bool) -> None:
    by_user = {user.pk: user for user in users}
    for note in created:
        message = {"type": "notification", **note.as_message(), "unread": unread_count(by_user[note.recipient_id])}
        send_now(group_name("user", note.recipient_id), message)
    if not email:
        return
    base = settings.PORTAL_BASE_URL.rstrip("/")
    for note in created:
        address = getattr(by_user[note.recipient_id], "email", "")
        if not address:
            continue
        text = "\n\n".join(part for part in (note.body, f"{base}{note.url}" if note.url else "") if part)
        try:
            send_mail(f"[portal] {note.title}", text or note.title, None, [address])
        except Exception:  # the notification row and the live push stand; e-mail is best effort
            log.exception("notification e-mail to user %s failed", note.recipient_id)


@transaction.atomic
def notification_read(*, actor, notification: Notification) -> Notification:
    """Mark one of the actor's own notifications read (again: no change)."""
    if notification.recipient_id != getattr(actor, "pk", None):
        raise NotFound("No notification matches the given query.")
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
        _push_count(actor)
    return notification


@transaction.atomic
def notifications_read_all(*, actor) -> int:
    """Mark every unread notification of the actor read; returns how many."""
    if not is_active_user(actor):
        return 0
    marked = Notification.objects.filter(recipient=actor, read_at__isnull=True).update(read_at=timezone.now())
    if marked:
        _push_count(actor)
    return marked


def _push_count(user) -> None:
    """Other open tabs of the same user update their bell: `{"type": "unread", "count"}` (API.md)."""
    user_id = user.pk
    transaction.on_commit(
        lambda: send_now(group_name("user", user_id), {"type": "unread", "count": unread_count(user)})
    )
