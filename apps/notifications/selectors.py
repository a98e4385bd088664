"""Reads: a user's own notifications. Nobody reads another user's inbox, platform admins included,
so the one rule is `recipient=user` for an active user (no object permissions to restrict by)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core import sqltemplates
from apps.core.errors import NotFound
from apps.core.permissions import is_active_user
from apps.notifications.models import Notification


def notifications_of(user, unread: bool | None = None) -> QuerySet[Notification]:
    """The user's notifications, newest first; `unread=True` only unread, `False` only read."""
    if not is_active_user(user):
        return Notification.objects.none()
    qs = Notification.objects.filter(recipient=user)
    if unread is not None:
        qs = qs.filter(read_at__isnull=unread)
    return qs.order_by("-created_at", "-pk")


def unread_count(user) -> int:
    """The bell's number on every page: its SQL is compiled once (apps/core/sqltemplates.py)."""
    if not is_active_user(user):
        return 0
    p = sqltemplates.Params()
    recipient = p.int(user.pk)
    return sqltemplates.count(
        p.key("notifications.unread"),
        p,
        lambda: Notification.objects.filter(recipient_id=recipient, read_at__isnull=True).values_list("pk"),
    )


def notification_for(user, pk) -> Notification:
    """One of the user's own notifications; someone else's reads as missing (404)."""
    try:
        found = notifications_of(user).filter(pk=int(pk)).first()
    except (TypeError, ValueError, OverflowError):
        found = None
    if found is None:
        raise NotFound("No notification matches the given query.")
    return found
