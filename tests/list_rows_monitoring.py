"""Row factories of the monitoring lists for tests/list_rows.py (alerts, drift reports, webhooks
and their delivery attempts): `make(w, start, stop)` adds rows number start..stop-1."""

from __future__ import annotations


def _endpoint(w):
    from tests.list_rows import _endpoint as endpoint

    return endpoint(w)


def _model(w):
    from tests.list_rows import _model as model

    return model(w)


def _alerts(w, start, stop):
    from django.utils import timezone

    from apps.monitoring.models import Alert

    endpoint, model, now = _endpoint(w), _model(w), timezone.now()
    for i in range(start, stop):
        about = [{"endpoint": endpoint}, {"model": model}, {"owner": w.owner}][i % 3]
        Alert.objects.create(
            kind="drift", severity=["info", "warning", "critical"][i % 3], dedup_key=f"list-costs:{i}",
            title=f"alert {i}", object_url=f"/endpoints/{endpoint.name}/", first_seen=now, last_seen=now,
            assignee=w.owner if i % 2 else None, **about,
        )  # fmt: skip


def _drift_reports(w, start, stop):
    from django.utils import timezone

    from apps.monitoring.models import DriftReport

    endpoint, now = _endpoint(w), timezone.now()
    for i in range(start, stop):
        DriftReport.objects.create(
            subject="endpoint", endpoint=endpoint, route="main", version=w.first, start=now, end=now,
            state="succeeded", status="ok", quality_status="ok", rows_current=100 + i, requested_by=w.owner,
        )  # fmt: skip


def _webhooks(w, start, stop):
    from apps.monitoring.webhooks import webhook_create

    for i in range(start, stop):
        webhook_create(actor=w.admin, name=f"hook-{i:03d}", url=f"https://example.com/{i}", events=["alert.opened"])


def _webhook(w):
    from apps.monitoring.webhooks import webhook_create

    if not hasattr(w, "webhook"):
        w.webhook = webhook_create(
            actor=w.admin, name="list-costs", url="https://example.com/hook", events=["alert.opened"]
        ).webhook
    return w.webhook


def _webhook_attempts(w, start, stop):
    from apps.monitoring.models import WebhookAttempt, WebhookDelivery

    hook = _webhook(w)
    for i in range(start, stop):
        d = WebhookDelivery.objects.create(webhook=hook, event="alert.opened", body="{}", state="retrying", attempts=1)
        WebhookAttempt.objects.create(
            delivery=d, attempt=1, status_code=500 + i % 4, error="HTTP 500", state="retrying"
        )
