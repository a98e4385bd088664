"""Alerts: one row per unresolved problem (a repeat of its dedup key raises its count), with a
history of everything that happened to it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.catalog.models import RegisteredModel
from apps.features.models import FeatureView
from apps.serving.models import Endpoint


class Alert(models.Model):
    class Kind(models.TextChoices):
        DRIFT = "drift"
        DATA_QUALITY = "data_quality"
        MODEL_QUALITY = "model_quality"
        CANARY_ROLLBACK = "canary_rollback"
        JOB_FAILED = "job_failed"
        WORKER_OFFLINE = "worker_offline"
        AUDIT_CHAIN = "audit_chain"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    class State(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    SEVERITY_RANK = {"info": 1, "warning": 2, "critical": 3}

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.WARNING)
    state = models.CharField(max_length=12, choices=State.choices, default=State.OPEN, db_index=True)
    dedup_key = models.CharField(max_length=200, db_index=True)
    count = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="what raised it: report id, job id, worker ...")
    # What it is about (at most one of these; none: a platform alert, seen by platform admins).
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    feature_view = models.ForeignKey(FeatureView, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
        help_text="the person it concerns besides the object's viewers (a failed job's owner)",
    )  # fmt: skip
    object_url = models.CharField(max_length=500, blank=True, help_text="a path inside the portal")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"], condition=~Q(state="resolved"), name="monitoring_alert_one_unresolved"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} alert {self.pk}: {self.title}"


class AlertEvent(models.Model):
    """One line of an alert's history: opened, repeated, acknowledged, assigned, resolved."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} of alert {self.alert_id}"
