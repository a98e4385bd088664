"""Reads of incident webhooks, and the one access decision for them: platform admins only.

A non-admin asking for one webhook (or its deliveries) gets 404, as a stranger does for any
object; asking for the collection (list, create) gets 403, as on the audit trail.
"""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core import permissions
from apps.core.errors import Forbidden, NotFound
from apps.monitoring.models import IncidentWebhook, WebhookAttempt


def _require_admin(user, *, one: bool) -> None:
    """The access decision of every webhook read and write (`one`: about one webhook)."""
    if permissions.is_platform_admin(user):
        return
    if one:
        raise NotFound("No incident webhook matches the given query.")
    raise Forbidden("Only platform admins manage incident webhooks.")


def webhooks_visible(user) -> QuerySet[IncidentWebhook]:
    _require_admin(user, one=False)
    return IncidentWebhook.objects.select_related("created_by").order_by("name", "pk")


def webhook_for(user, pk) -> IncidentWebhook:
    """One webhook for reading or changing alike (admins may do both; others learn nothing)."""
    _require_admin(user, one=True)
    try:
        found = IncidentWebhook.objects.select_related("created_by", "secret").filter(pk=int(pk)).first()
    except (TypeError, ValueError, OverflowError):
        found = None
    if found is None:
        raise NotFound("No incident webhook matches the given query.")
    return found


def attempts_of(webhook: IncidentWebhook) -> QuerySet[WebhookAttempt]:
    """The webhook's delivery log, newest attempt first, each row with its delivery (one query)."""
    return WebhookAttempt.objects.filter(delivery__webhook=webhook).select_related("delivery").order_by("-at", "-pk")
