"""Reads the monitoring pages need beyond apps/monitoring/selectors.py: the alert inbox (its
default is every unresolved alert) and what a user may do on an alert, a report's endpoint or a
version's profile. Everything goes through the decision point (apps/core/permissions.py)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.permissions import can
from apps.monitoring.models import Alert
from apps.monitoring.selectors import alerts_visible

UNRESOLVED = "unresolved"


def alerts_inbox(user, filters: dict) -> QuerySet[Alert]:
    """The alerts `user` may view for the inbox: `state` is one of Alert.State, empty (any) or
    "unresolved" (open and acknowledged); severity and kind as in `alerts_visible`."""
    state = filters.get("state") or ""
    alerts = alerts_visible(user, {**filters, "state": "" if state == UNRESOLVED else state})
    return alerts.exclude(state=Alert.State.RESOLVED) if state == UNRESOLVED else alerts


def may_act_on(user, obj) -> bool:
    """May `user` change `obj` (an alert: acknowledge, resolve, assign; an endpoint: its monitoring
    settings; a model: build its versions' profiles)? The pages' flag for showing the forms."""
    return can(user, "change", obj)
