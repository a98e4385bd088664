"""Monitoring: reference profiles, drift and data-quality reports, alerts, incident webhooks.

Nothing here carries guardian rows: a report, profile or alert is visible to whoever may view
what it is about (apps/core/permissions.py, `_DERIVED`); webhooks belong to platform admins.
"""

from apps.monitoring.models.alerts import Alert, AlertEvent
from apps.monitoring.models.profiles import EndpointMonitor, ReferenceProfile
from apps.monitoring.models.reports import DriftReport
from apps.monitoring.models.webhooks import IncidentWebhook, WebhookAttempt, WebhookDelivery

__all__ = [
    "Alert",
    "AlertEvent",
    "DriftReport",
    "EndpointMonitor",
    "IncidentWebhook",
    "ReferenceProfile",
    "WebhookAttempt",
    "WebhookDelivery",
]
