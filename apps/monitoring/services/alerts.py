"""Alerts: raise (deduplicated: a storm is one alert with a count), acknowledge, resolve, assign.

`alert_raise` is called by the system (drift checks, canary rollbacks, failed jobs, the worker
watch); the others by people, through the decision point (`change` on the alert: whoever may
change its endpoint, model or feature view; platform admins for platform alerts). Every change
writes a history line; notifications and incident webhooks leave after commit.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import Conflict
from apps.core.permissions import can, is_active_user, platform_admins, require
from apps.monitoring.models import Alert, AlertEvent
from apps.monitoring.webhooks import webhooks_dispatch
from apps.notifications.services import notify

log = logging.getLogger(__name__)

TITLE_MAX = Alert._meta.get_field("title").max_length


def alert_raise(
    *,
    kind: str,
    dedup_key: str,
    title: str,
    severity: str = Alert.Severity.WARNING,
    description: str = "",
    data: dict | None = None,
    endpoint=None,
    model=None,
    feature_view=None,
    owner=None,
    object_url: str = "",
    once: bool = False,
) -> tuple[Alert, bool]:
    """Open an alert, or count a repeat of the unresolved one with the same `dedup_key` (its
    severity rises to the highest seen; it reopens nothing that was resolved: a new one opens).
    `once`: a key already raised in any state is not counted again (one event, several saves).
    Returns `(alert, opened)`."""
    if kind not in Alert.Kind.values or severity not in Alert.Severity.values:
        raise ValueError(f"unknown alert kind {kind!r} or severity {severity!r}")
    now = timezone.now()
    with transaction.atomic():
        existing = Alert.objects.select_for_update().filter(dedup_key=dedup_key).exclude(state=Alert.State.RESOLVED)
        alert = existing.first()
        if alert is None and once and Alert.objects.filter(dedup_key=dedup_key).exists():
            return Alert.objects.filter(dedup_key=dedup_key).order_by("-pk").first(), False
        if alert is not None:
            if once:
                return alert, False
            return _repeat(alert, severity, title, description, data, now), False
        try:
            with transaction.atomic():  # a concurrent raise of the same key: count on its row instead
                alert = Alert.objects.create(
                    kind=kind, severity=severity, dedup_key=dedup_key[:200], title=title[:TITLE_MAX],
                    description=description, data=data or {}, endpoint=endpoint, model=model,
                    feature_view=feature_view, owner=owner, object_url=object_url[:500], first_seen=now, last_seen=now,
                )  # fmt: skip
        except IntegrityError:
            alert = Alert.objects.select_for_update().exclude(state=Alert.State.RESOLVED).get(dedup_key=dedup_key)
            return _repeat(alert, severity, title, description, data, now), False
        AlertEvent.objects.create(alert=alert, action="opened", note=title[:500])
        _announce(alert, "alert.opened")
    return alert, True


def _repeat(alert: Alert, severity: str, title: str, description: str, data: dict | None, now) -> Alert:
    raised = Alert.SEVERITY_RANK[severity] > Alert.SEVERITY_RANK[alert.severity]
    alert.count += 1
    alert.last_seen = now
    alert.title = title[:TITLE_MAX]
    alert.description = description or alert.description
    alert.data = {**alert.data, **(data or {})}
    fields = ["count", "last_seen", "title", "description", "data"]
    if raised:
        alert.severity = severity
        fields.append("severity")
    alert.save(update_fields=fields)
    note = f"seen again ({alert.count} times)" + (f"; severity now {severity}" if raised else "")
    AlertEvent.objects.create(alert=alert, action="repeated", note=note)
    if raised:  # the incident desk hears of an escalation, not of every repeat
        _announce(alert, "alert.updated")
    return alert


def alert_resolve_key(*, dedup_key: str, note: str) -> Alert | None:
    """The system resolves its own alert when the problem went away (a worker came back)."""
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update().filter(dedup_key=dedup_key).exclude(state=Alert.State.RESOLVED).first()
        )
        if alert is None:
            return None
        return _resolve(alert, actor=None, note=note)


def alert_acknowledge(*, alert: Alert, actor, note: str = "") -> Alert:
    """open -> acknowledged; 409 otherwise."""
    require(actor, "change", alert)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.state != Alert.State.OPEN:
            raise Conflict(f"The alert is {alert.state}; only an open alert can be acknowledged.")
        alert.state = Alert.State.ACKNOWLEDGED
        alert.acknowledged_at = timezone.now()
        if alert.assignee_id is None:
            alert.assignee = actor  # who acknowledges, owns it until someone assigns it elsewhere
        alert.save(update_fields=["state", "acknowledged_at", "assignee"])
        AlertEvent.objects.create(alert=alert, action="acknowledged", actor=actor, note=note[:500])
        _announce(alert, "alert.updated", notify_people=False)
    return alert


def alert_resolve(*, alert: Alert, actor, note: str = "") -> Alert:
    """open or acknowledged -> resolved; 409 when already resolved."""
    require(actor, "change", alert)
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.state == Alert.State.RESOLVED:
            raise Conflict("The alert is already resolved.")
        return _resolve(alert, actor=actor, note=note)


def _resolve(alert: Alert, *, actor, note: str) -> Alert:
    alert.state = Alert.State.RESOLVED
    alert.resolved_at = timezone.now()
    alert.save(update_fields=["state", "resolved_at"])
    AlertEvent.objects.create(alert=alert, action="resolved", actor=actor, note=note[:500])
    _announce(alert, "alert.resolved", notify_people=False)
    return alert


def alert_assign(*, alert: Alert, actor, assignee: str | None) -> Alert:
    """Give the alert to a user (by username) who may act on it, or to nobody (None)."""
    require(actor, "change", alert)
    user = None
    if assignee:
        user = get_user_model().objects.filter(username=assignee).first()
        if user is None or not is_active_user(user) or not can(user, "change", alert):
            raise ValidationError({"assignee": [f"No user {assignee!r} who may act on this alert."]})
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.assignee_id == getattr(user, "pk", None):
            return alert
        alert.assignee = user
        alert.save(update_fields=["assignee"])
        who = user.username if user is not None else "nobody"
        AlertEvent.objects.create(alert=alert, action="assigned", actor=actor, note=f"assigned to {who}")
    if user is not None and user.pk != actor.pk:
        transaction.on_commit(
            lambda: notify(
                recipients=[user],
                kind="alert.assigned",
                title=f"Alert assigned to you: {alert.title}",
                url=_url(alert),
                obj=alert,
                email=True,
            )  # fmt: skip
        )
    return alert


# --- who hears of it ------------------------------------------------------------------------------


def _url(alert: Alert) -> str:
    return f"/monitoring/alerts/{alert.pk}/"


def recipients(alert: Alert) -> list:
    """The owner of what the alert is about and its assignee; platform admins for platform alerts."""
    people = []
    for subject in (alert.endpoint, alert.model, alert.feature_view):
        if subject is not None:
            people.append(subject.owner)
    if alert.owner_id:
        people.append(alert.owner)
    if alert.assignee_id:
        people.append(alert.assignee)
    if not people:
        people = list(platform_admins())
    return people


def _announce(alert: Alert, event: str, *, notify_people: bool = True) -> None:
    """After commit: the portal notification (opened/escalated only) and the incident webhooks."""

    def send() -> None:
        if notify_people:
            try:
                notify(recipients=recipients(alert), kind=f"alert.{alert.severity}", title=alert.title,
                       body=alert.description[:2000], url=_url(alert), obj=alert,
                       email=alert.severity == Alert.Severity.CRITICAL)  # fmt: skip
            except Exception:  # noqa: BLE001  (a notification never fails the alert)
                log.exception("alert %s: notification failed", alert.pk)
        try:
            webhooks_dispatch(alert, event)
        except Exception:  # noqa: BLE001  (deliveries retry on their own; dispatch must not fail the alert)
            log.exception("alert %s: webhook dispatch failed", alert.pk)

    transaction.on_commit(send)
