"""Sending incident webhooks: dispatch on an alert event, one attempt per call, the due sweep.

- `webhooks_dispatch(alert, event)`: a delivery per active webhook subscribed to `event` whose
  `min_severity` the alert reaches, its body built now (a snapshot), then the send task.
- `delivery_attempt(pk)`: claim the delivery (one UPDATE: two workers never send the same attempt),
  POST the body signed, record the attempt; 2xx delivered, anything else (a status, a timeout, a
  refused connection) retried after an exponential backoff with full jitter, dead after the limit.
- `webhooks_due()`: the sweep beat runs every few seconds: sends the deliveries whose attempt is
  overdue (their task was lost with a worker, or the broker), from the schedule in the database.

Settings (read with defaults until portal/settings/ names them): MONITORING_WEBHOOK_TIMEOUT_S
(5), MONITORING_WEBHOOK_BACKOFF_BASE_S (2), MONITORING_WEBHOOK_BACKOFF_CAP_S (600),
MONITORING_WEBHOOK_MAX_ATTEMPTS (8).
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.core.dispatch import enqueue
from apps.core.vault import VaultError
from apps.monitoring.models import Alert, IncidentWebhook, WebhookAttempt, WebhookDelivery
from apps.monitoring.webhooks.payload import payload_body, payload_build
from apps.monitoring.webhooks.services import webhook_secret
from apps.monitoring.webhooks.signing import webhook_sign

log = logging.getLogger(__name__)

TASK = "monitoring.deliver_webhook"
QUEUE = "default"
State = WebhookDelivery.State
# A claimed delivery is not claimed again before the send's timeout has long passed; a sender
# that died mid-send leaves it to the sweep once this has run out.
CLAIM_MARGIN_S = 30.0
# A task that fires a little before its attempt is due (clocks, broker) still sends it.
EARLY_S = 1.0
# The sweep leaves an attempt this long to its own countdown task before sending it itself.
SWEEP_GRACE_S = 10.0
SWEEP_BATCH = 500
ERROR_CHARS = 500


def timeout_s() -> float:
    return float(getattr(settings, "MONITORING_WEBHOOK_TIMEOUT_S", 5.0))


def max_attempts() -> int:
    return int(getattr(settings, "MONITORING_WEBHOOK_MAX_ATTEMPTS", 8))


def backoff_s(attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds before the attempt after `attempt` (1-based): full jitter, uniform between 0 and
    min(cap, base * 2^(attempt-1)), so receivers coming back are not hit by every sender at once."""
    return (rng or random).uniform(0.0, backoff_ceiling_s(attempt))


def backoff_ceiling_s(attempt: int) -> float:
    base = float(getattr(settings, "MONITORING_WEBHOOK_BACKOFF_BASE_S", 2.0))
    cap = float(getattr(settings, "MONITORING_WEBHOOK_BACKOFF_CAP_S", 600.0))
    return min(cap, base * 2 ** min(max(attempt - 1, 0), 60))


# --- dispatch --------------------------------------------------------------------------------------


def webhooks_dispatch(alert: Alert, event: str) -> int:
    """Queue `event` about `alert` to every webhook that wants it; the number of deliveries made.

    The alert service calls this in `transaction.on_commit`; the deliveries are written in their
    own transaction and their tasks sent once it commits."""
    if event not in IncidentWebhook.EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    rank = Alert.SEVERITY_RANK.get(alert.severity, 0)
    # Few rows: the subscription is matched here, the same on SQLite and PostgreSQL.
    webhooks = [
        w
        for w in IncidentWebhook.objects.filter(active=True).order_by("pk")
        if event in w.events and rank >= Alert.SEVERITY_RANK.get(w.min_severity, 99)
    ]
    if not webhooks:
        return 0
    body = payload_body(payload_build(alert, event))
    now = timezone.now()
    with transaction.atomic():
        deliveries = WebhookDelivery.objects.bulk_create(
            [WebhookDelivery(webhook=w, event=event, alert=alert, body=body, next_attempt_at=now) for w in webhooks]
        )
        for delivery in deliveries:
            enqueue(TASK, args=[delivery.pk], queue=QUEUE)
    return len(deliveries)


# --- one attempt -----------------------------------------------------------------------------------


def delivery_attempt(pk: int, *, now: datetime | None = None) -> str:
    """Send the delivery's next attempt if it is due and no one else is sending it. Returns the
    state it left (delivered, retrying, dead) or ``skipped``."""
    now = now or timezone.now()
    claim_until = now + timedelta(seconds=timeout_s() + CLAIM_MARGIN_S)
    claimed = WebhookDelivery.objects.filter(
        pk=pk, state__in=WebhookDelivery.ACTIVE_STATES, next_attempt_at__lte=now + timedelta(seconds=EARLY_S)
    ).update(next_attempt_at=claim_until)
    if not claimed:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("webhook__secret").filter(pk=pk).first()
    if delivery is None:  # its webhook was deleted meanwhile
        return "skipped"
    webhook = delivery.webhook
    number = delivery.attempts + 1
    if not webhook.active:
        return _record(delivery, number, None, "The webhook was deactivated; not sent.", 0.0, final=True)
    status, error, took_ms = _post(delivery, webhook)
    delivered = status is not None and 200 <= status < 300
    return _record(delivery, number, status, error, took_ms, delivered=delivered)


def _post(delivery: WebhookDelivery, webhook: IncidentWebhook) -> tuple[int | None, str, float]:
    """POST the stored body, freshly signed; (status or None, error text, milliseconds)."""
    body = delivery.body.encode()
    timestamp = int(time.time())
    try:
        secret = webhook_secret(webhook)
    except VaultError as exc:  # counted as a failed attempt, and shown in the delivery log
        log.exception("webhook %s: its secret cannot be read", webhook.pk)
        return None, f"The webhook's secret cannot be read from the vault: {exc}"[:ERROR_CHARS], 0.0
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "portal-webhooks/1",
        "X-Portal-Event": delivery.event,
        "X-Portal-Delivery": str(delivery.delivery_id),
        "X-Portal-Timestamp": str(timestamp),
        "X-Portal-Signature": webhook_sign(secret, timestamp, body),
    }
    started = time.perf_counter()
    try:
        # No redirects: a 3xx is not a delivery, and the signed body must not go elsewhere.
        with requests.post(
            webhook.url, data=body, headers=headers, timeout=timeout_s(), allow_redirects=False, stream=True
        ) as response:
            status = response.status_code
            excerpt = "" if 200 <= status < 300 else next(response.iter_content(200), b"").decode("utf-8", "replace")
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS], (time.perf_counter() - started) * 1000
    took_ms = (time.perf_counter() - started) * 1000
    return status, "" if 200 <= status < 300 else f"HTTP {status}: {excerpt}".strip()[:ERROR_CHARS], took_ms


def _record(
    delivery: WebhookDelivery,
    number: int,
    status: int | None,
    error: str,
    took_ms: float,
    *,
    delivered: bool = False,
    final: bool = False,
) -> str:
    now = timezone.now()
    delay = None
    if delivered:
        state = State.DELIVERED
    elif final or number >= max_attempts():
        state = State.DEAD
    else:
        state, delay = State.RETRYING, backoff_s(number)
    next_at = now + timedelta(seconds=delay) if delay is not None else None
    with transaction.atomic():
        # Only the holder of this attempt writes it (the count has not moved since the claim).
        updated = WebhookDelivery.objects.filter(pk=delivery.pk, attempts=number - 1).update(
            attempts=F("attempts") + 1,
            state=state,
            next_attempt_at=next_at,
            finished_at=None if delay is not None else now,
        )
        if not updated:
            return "skipped"
        WebhookAttempt.objects.create(
            delivery=delivery, attempt=number, status_code=status, error=error, state=state,
            next_attempt_at=next_at, duration_ms=round(took_ms, 1),
        )  # fmt: skip
        if delay is not None:
            enqueue(TASK, args=[delivery.pk], queue=QUEUE, countdown=delay)
    if state == State.DEAD:
        log.warning("webhook delivery %s dead after %d attempts: %s", delivery.delivery_id, number, error)
    return state


# --- the sweep ---------------------------------------------------------------------------------------


def webhooks_due(*, now: datetime | None = None, limit: int = SWEEP_BATCH) -> int:
    """Send the task again for every delivery whose attempt is overdue (its countdown task is gone
    with a restarted worker); the claim in `delivery_attempt` keeps a duplicate from sending twice."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            state__in=WebhookDelivery.ACTIVE_STATES, next_attempt_at__lte=now - timedelta(seconds=SWEEP_GRACE_S)
        )
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in due:
        enqueue(TASK, args=[pk], queue=QUEUE)
    return len(due)
