"""Celery tasks of incident webhooks, sent by name: `monitoring.deliver_webhook` (one attempt of
one delivery, by id) and `monitoring.webhooks_due` (the sweep beat runs). apps/monitoring/tasks.py
imports this module so that the worker registers them."""

from __future__ import annotations

from celery import shared_task

from apps.monitoring.webhooks.delivery import delivery_attempt, webhooks_due


@shared_task(name="monitoring.deliver_webhook")
def deliver_webhook(delivery_id: int) -> dict:
    if not isinstance(delivery_id, int) or isinstance(delivery_id, bool):
        raise ValueError("deliver_webhook takes a WebhookDelivery id")
    return {"delivery": delivery_id, "result": delivery_attempt(delivery_id)}


@shared_task(name="monitoring.webhooks_due")
def send_due_webhooks() -> dict:
    return {"queued": webhooks_due()}
