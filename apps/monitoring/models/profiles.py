"""A model version's reference profile, and an endpoint's drift-check settings."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.catalog.models import ModelVersion
from apps.core.models import VaultBlob
from apps.serving.models import Endpoint


class ReferenceProfile(models.Model):
    """What the version's training data looked like, per feature and on predictions, kept compact
    (histograms, quantiles, frequencies: apps.monitoring.stats) so checks never re-read the data."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        READY = "ready"
        FAILED = "failed"

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="reference_profile")
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    source = models.CharField(max_length=200, blank=True, help_text="training-set:<name> or demo:<dataset>")
    rows = models.BigIntegerField(default=0)
    columns = models.JSONField(default=list, help_text="feature names in the model's input order")
    data = models.JSONField(default=dict, blank=True, help_text="apps.monitoring.stats.profile_build's output")
    upload = models.ForeignKey(
        VaultBlob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="a reference file given instead of the training data (encrypted; removed once built)",
    )  # fmt: skip
    error = models.TextField(blank=True)
    built_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"reference profile of {self.version}"


class EndpointMonitor(models.Model):
    """How an endpoint is checked: every `schedule_minutes` (0: on demand only) over the last
    `window_minutes` of logged traffic, with report thresholds and per-feature overrides."""

    endpoint = models.OneToOneField(Endpoint, on_delete=models.CASCADE, related_name="monitor")
    schedule_minutes = models.PositiveIntegerField(default=60)
    window_minutes = models.PositiveIntegerField(default=60)
    thresholds = models.JSONField(default=dict, blank=True)
    overrides = models.JSONField(default=dict, blank=True, help_text="{feature: {threshold: value}}")
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"monitoring of {self.endpoint}"
