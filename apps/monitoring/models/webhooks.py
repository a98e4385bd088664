"""Incident webhooks (platform admins'): one delivery per event and webhook, one row per attempt.

A delivery keeps its exact body (every retry sends the same bytes under the same
`delivery_id`) and its schedule (`next_attempt_at`) in the database, so retries survive a
worker restart: the sweep (`apps.monitoring.webhooks.delivery.webhooks_due`) sends what is due.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from apps.core.models import VaultBlob


class IncidentWebhook(models.Model):
    EVENTS = ("alert.opened", "alert.updated", "alert.resolved")
    SEVERITIES = ("info", "warning", "critical")

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="alert.opened, alert.updated, alert.resolved")
    min_severity = models.CharField(
        max_length=8, default="warning", choices=[(s, s) for s in SEVERITIES], help_text="alerts below it are not sent"
    )
    active = models.BooleanField(default=True)
    secret = models.ForeignKey(
        VaultBlob, on_delete=models.PROTECT, related_name="+", help_text="encrypted in the vault"
    )
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "incident webhook"

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        RETRYING = "retrying"
        DELIVERED = "delivered"
        DEAD = "dead"

    ACTIVE_STATES = (State.PENDING, State.RETRYING)

    webhook = models.ForeignKey(IncidentWebhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, help_text="X-Portal-Delivery")
    event = models.CharField(max_length=30)
    alert = models.ForeignKey("monitoring.Alert", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    body = models.TextField(help_text="the exact JSON sent on every attempt (snapshot taken at the event)")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due; while one is being sent, the end of the sender's claim.
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} delivery {self.delivery_id}"


class WebhookAttempt(models.Model):
    """One POST of a delivery, with the state it left the delivery in and when the next is due."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=10, choices=WebhookDelivery.State.choices)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(default=0.0)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "webhook attempt"

    def __str__(self) -> str:
        return f"attempt {self.attempt} of delivery {self.delivery_id}"
