"""Incident webhooks (issue #16): platform admins' subscriptions to alert events, signed deliveries
with retries and a dead letter, and the delivery log. Public names re-exported here; the alert
service calls `webhooks_dispatch(alert, event)` in `transaction.on_commit`."""

from apps.monitoring.webhooks.delivery import backoff_s, delivery_attempt, webhooks_dispatch, webhooks_due
from apps.monitoring.webhooks.payload import payload_build
from apps.monitoring.webhooks.selectors import attempts_of, webhook_for, webhooks_visible
from apps.monitoring.webhooks.services import webhook_create, webhook_delete, webhook_update
from apps.monitoring.webhooks.signing import webhook_sign, webhook_verify

__all__ = [
    "attempts_of",
    "backoff_s",
    "delivery_attempt",
    "payload_build",
    "webhook_create",
    "webhook_delete",
    "webhook_for",
    "webhook_sign",
    "webhook_update",
    "webhook_verify",
    "webhooks_dispatch",
    "webhooks_due",
    "webhooks_visible",
]
