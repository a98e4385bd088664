"""The JSON a webhook receives (shared/API.md "Webhooks", a public contract), in the ITIL manner
incident tools import: short description, impact and urgency 1-3, the configuration item (the
endpoint, model or feature view the alert is about) and links back into the portal.

Built once when the event happens and stored on the delivery, so every retry sends the same bytes
even if the alert changes meanwhile.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils import timezone

from apps.monitoring.models import Alert

# ITIL: 1 is the highest impact and urgency.
PRIORITY = {"critical": 1, "warning": 2, "info": 3}
SHORT_DESCRIPTION_CHARS = 160


def payload_build(alert: Alert, event: str) -> dict:
    """The body of one `event` (alert.opened/updated/resolved) about `alert`."""
    occurred = alert.resolved_at if event == "alert.resolved" and alert.resolved_at else alert.last_seen
    level = PRIORITY.get(alert.severity, 3)
    return {
        "event": event,
        "short_description": alert.title[:SHORT_DESCRIPTION_CHARS],
        "description": alert.description or alert.title,
        "impact": level,
        "urgency": level,
        "configuration_item": configuration_item(alert),
        "alert": {
            "id": alert.pk,
            "kind": alert.kind,
            "severity": alert.severity,
            "state": alert.state,
            "count": alert.count,
        },
        "links": {
            "alert": _absolute(_page("monitoring:alert-detail", alert.pk) or f"/monitoring/alerts/{alert.pk}/"),
            "object": _absolute(_object_path(alert)),
        },
        "occurred_at": (occurred or timezone.now()).isoformat().replace("+00:00", "Z"),
    }


def payload_body(payload: dict) -> str:
    """The exact text sent: compact, keys in the contract's order, non-ASCII as is (UTF-8)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def configuration_item(alert: Alert) -> dict:
    if alert.endpoint_id:
        return {"kind": "endpoint", "name": alert.endpoint.name}
    if alert.model_id:
        return {"kind": "model", "name": alert.model.name}
    if alert.feature_view_id:
        return {"kind": "feature_view", "name": alert.feature_view.name}
    return {"kind": "platform", "name": "portal"}


def _object_path(alert: Alert) -> str | None:
    if alert.object_url:
        return alert.object_url
    if alert.endpoint_id:
        return _page("serving:endpoint-detail", alert.endpoint.name)
    if alert.model_id:
        return _page("catalog:model-detail", alert.model.name)
    if alert.feature_view_id:
        return _page("features:view-detail", alert.feature_view.name)
    return None


def _page(name: str, *args) -> str | None:
    """A page's path without the current script prefix (PORTAL_BASE_URL carries the deployment's)."""
    try:
        path = reverse(name, args=args)
    except NoReverseMatch:
        return None
    prefix = get_script_prefix()
    return "/" + path[len(prefix) :] if path.startswith(prefix) else path


def _absolute(path: str | None) -> str | None:
    if not path:
        return None
    if path.startswith(("http://", "https://")):
        return path
    return settings.PORTAL_BASE_URL.rstrip("/") + "/" + path.lstrip("/")
