"""Incident webhooks: platform admins only. Everyone else gets 403 on the collection (as on the
audit trail) and 404 on one webhook and its delivery log (strangers learn nothing)."""

from __future__ import annotations

from tests.access.matrix import AccessMatrix

L = "/api/v1/monitoring/webhooks/"
W = "/api/v1/monitoring/webhooks/{webhook}"
NOT_ADMIN = dict(owner=403, viewer=403, editor=403, team=403, stranger=403, auditor=403)
HIDDEN = dict(owner=404, viewer=404, editor=404, team=404, stranger=404, auditor=404)


def collection(ok: int) -> dict:
    return dict(admin=ok, anon=401, no_scope_token=403) | NOT_ADMIN


def one(ok: int) -> dict:
    return dict(admin=ok, anon=401, no_scope_token=403) | HIDDEN


def webhook(owner, team) -> dict:
    """One webhook made by the platform admin, with a dead-lettered delivery in its log."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.monitoring.models import WebhookAttempt, WebhookDelivery
    from apps.monitoring.webhooks import webhook_create

    admin = get_user_model().objects.get(username="platformadmin")
    made = webhook_create(actor=admin, name="matrix", url="https://example.com/hook", events=["alert.opened"]).webhook
    delivery = WebhookDelivery.objects.create(
        webhook=made, event="alert.opened", body="{}", state="dead", attempts=1, finished_at=timezone.now()
    )
    WebhookAttempt.objects.create(delivery=delivery, attempt=1, status_code=500, error="HTTP 500", state="dead")
    return {"webhook": made.pk, "share": []}


def new_webhook(world) -> dict:
    return {"name": "another", "url": "https://example.com/other", "events": ["alert.resolved"]}


class TestMonitoringWebhookApiAccess(AccessMatrix):
    make = staticmethod(webhook)
    rows = {
        ("GET", L): collection(200),
        ("POST", L): collection(201) | {"body": new_webhook},
        ("GET", f"{W}/"): one(200),
        ("PATCH", f"{W}/"): one(200) | {"body": {"active": False}},
        ("DELETE", f"{W}/"): one(204),
        ("GET", f"{W}/deliveries/"): one(200),
    }
