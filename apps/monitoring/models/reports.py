"""A drift and data-quality report: a window of an endpoint's logged traffic against its
version's reference profile, or two ingest windows of a feature view."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.catalog.models import ModelVersion
from apps.features.models import FeatureView
from apps.serving.models import Endpoint


class DriftReport(models.Model):
    class Subject(models.TextChoices):
        ENDPOINT = "endpoint"
        FEATURE_VIEW = "feature_view"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    class Status(models.TextChoices):
        OK = "ok"
        WARNING = "warning"
        DRIFT = "drift"

    class Trigger(models.TextChoices):
        MANUAL = "manual"
        SCHEDULE = "schedule"

    subject = models.CharField(max_length=12, choices=Subject.choices)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    route = models.CharField(max_length=40, blank=True)
    version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    feature_view = models.ForeignKey(FeatureView, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    reference_start = models.DateTimeField(null=True, blank=True)
    reference_end = models.DateTimeField(null=True, blank=True)
    start = models.DateTimeField(help_text="the current window")
    end = models.DateTimeField()
    trigger = models.CharField(max_length=8, choices=Trigger.choices, default=Trigger.MANUAL)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    status = models.CharField(max_length=8, choices=Status.choices, blank=True)
    quality_status = models.CharField(max_length=10, blank=True)
    rows_reference = models.BigIntegerField(default=0)
    rows_current = models.BigIntegerField(default=0)
    thresholds = models.JSONField(default=dict, blank=True, help_text="the thresholds this report used")
    overrides = models.JSONField(default=dict, blank=True)
    features = models.JSONField(default=dict, blank=True, help_text="per feature: psi, ks, chi2, js, status, hists")
    predictions = models.JSONField(default=dict, blank=True)
    quality = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True, help_text="overall: drifted features, share, notes")
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "-created_at"], name="monitoring_report_endpoint")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(subject="endpoint", endpoint__isnull=False, feature_view__isnull=True))
                | Q(subject="feature_view", feature_view__isnull=False, endpoint__isnull=True),
                name="monitoring_report_one_subject",
            )
        ]

    def __str__(self) -> str:
        return f"drift report {self.pk}"

    @property
    def subject_name(self) -> str:
        if self.subject == self.Subject.ENDPOINT:
            return f"{self.endpoint.name}/{self.route}" if self.route else self.endpoint.name
        return self.feature_view.name
