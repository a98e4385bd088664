"""Serving: endpoints and their routes, canary ramps, prediction logs, per-route traffic windows,
outcome feedback and batch-scoring jobs.

An `Endpoint` answers predictions through its live `Route`s (a pinned model version or an alias it
follows, a weight) and copies traffic to its shadow routes. Endpoints carry object permissions;
routes, canaries, logs, windows and feedback are the endpoint's and are reached through it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.catalog.models import ModelVersion, RegisteredModel, alias_validator
from apps.core.models import OwnedModel, VaultBlob
from apps.core.names import name_validator
from apps.core.permission_tables import object_permission_models


class Endpoint(OwnedModel):
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)
    region = models.CharField(max_length=41, default="default", help_text="where its prediction logs are kept")
    log_sample_rate = models.FloatField(
        default=0.1, help_text="share of requests whose inputs and outputs are logged (0 to 1)"
    )
    # How a move of the alias its baseline route follows reaches traffic: {} switches at once; a canary
    # plan ({"steps", "step_interval_s", "guards"}) ramps the new version in and rolls back by itself.
    rollout = models.JSONField(default=dict, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


EndpointUserObjectPermission, EndpointGroupObjectPermission = object_permission_models(Endpoint)


class Route(models.Model):
    """One way through an endpoint: a pinned version or an alias it follows, a weight and a mode.

    Live routes share the traffic by weight (percent; they sum to 100 when any live route has
    weight); shadow routes get a copy of live traffic off the request path and are never returned.
    """

    class Mode(models.TextChoices):
        LIVE = "live", "Live"
        SHADOW = "shadow", "Shadow"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="routes")
    name = models.CharField(max_length=40, validators=[alias_validator])
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    alias = models.CharField(max_length=40, blank=True, help_text="follow this alias of the model")
    weight = models.PositiveSmallIntegerField(default=100)
    mode = models.CharField(max_length=6, choices=Mode.choices, default=Mode.LIVE)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["endpoint", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "name"], name="serving_route_unique"),
            models.CheckConstraint(
                condition=(Q(version__isnull=False) & Q(alias="")) | (Q(version__isnull=True) & ~Q(alias="")),
                name="serving_route_version_xor_alias",
            ),
            models.CheckConstraint(condition=Q(weight__lte=100), name="serving_route_weight_percent"),
        ]

    def __str__(self) -> str:
        target = f"@{self.alias}" if self.alias else f"v{self.version.version if self.version_id else '?'}"
        return f"{self.name} ({target}, {self.weight}%, {self.mode})"


class Canary(models.Model):
    """A ramp of a target version on an endpoint, evaluated step by step against the baseline route."""

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        ABORTED = "aborted", "Aborted"

    FINAL = (State.COMPLETED, State.ROLLED_BACK, State.ABORTED)

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="canaries")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    route_name = models.CharField(max_length=40, default="canary", help_text="the route carrying the canary")
    baseline_route = models.CharField(max_length=40, help_text="the live route it is compared with")
    steps = models.JSONField(help_text="traffic percentages, ascending, ending at 100")
    step_interval_s = models.PositiveIntegerField()
    guards = models.JSONField(default=dict, help_text="error_rate, p95_latency_ms, outcome, min_samples")
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING, db_index=True)
    step = models.PositiveSmallIntegerField(default=0, help_text="index into steps")
    weight = models.PositiveSmallIntegerField(default=0)
    evaluations = models.JSONField(default=list, blank=True, help_text="[{step, baseline, canary, verdict, at}]")
    reason = models.TextField(blank=True)
    promotion_ref = models.CharField(max_length=64, blank=True, help_text="the approved promotion it rests on")
    follow_alias = models.CharField(
        max_length=40,
        blank=True,
        help_text="started by a move of this alias: the baseline follows it again on completion",
    )
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(auto_now_add=True)
    step_started_at = models.DateTimeField()
    next_evaluation_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint"], condition=Q(state="running"), name="serving_one_running_canary"
            )
        ]

    def __str__(self) -> str:
        return f"canary of v{self.version.version} on {self.endpoint.name} ({self.state})"


class PredictionLog(models.Model):
    """One sampled prediction (or a failed one): written in batches off the request path."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=40)
    mode = models.CharField(max_length=6, default=Route.Mode.LIVE)
    version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, related_name="+")
    prediction_id = models.CharField(max_length=64, db_index=True)
    key_hash = models.CharField(max_length=64, blank=True, help_text="HMAC-SHA256 of the caller key")
    caller = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token_prefix = models.CharField(max_length=12, blank=True)
    rows = models.PositiveIntegerField(default=1)
    inputs = models.JSONField(null=True, blank=True)
    outputs = models.JSONField(null=True, blank=True)
    latency_ms = models.FloatField()
    status = models.PositiveSmallIntegerField(default=200)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "created_at"], name="serving_log_endpoint_time")]


LATENCY_EDGES_MS = (0.25, 0.5, 1, 2, 3, 5, 10, 20, 50, 100, 250, 500, 1000, 5000)


class TrafficWindow(models.Model):
    """Counters of one route and version over one minute, summed from every web process.

    `latency_hist` counts requests per LATENCY_EDGES_MS bucket (the last bucket is everything
    above the last edge). Shadow columns compare a shadow route's outputs with the live answer.
    """

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    route = models.CharField(max_length=40)
    mode = models.CharField(max_length=6, default=Route.Mode.LIVE)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    rows = models.PositiveBigIntegerField(default=0)
    latency_sum_ms = models.FloatField(default=0.0)
    latency_hist = models.JSONField(default=list)
    shadow_compared = models.PositiveBigIntegerField(default=0)
    shadow_agreed = models.PositiveBigIntegerField(default=0)
    shadow_abs_diff_sum = models.FloatField(default=0.0)
    shadow_dropped = models.PositiveBigIntegerField(default=0)
    logs_dropped = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["endpoint", "-minute", "route"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "route", "version", "minute"], name="serving_window_unique")
        ]
        indexes = [models.Index(fields=["endpoint", "minute"], name="serving_window_endpoint_time")]


class Feedback(models.Model):
    """The observed outcome of one prediction (A/B tests, canary outcome guards, live quality)."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    prediction_id = models.CharField(max_length=64, unique=True)
    route = models.CharField(max_length=40)
    version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, related_name="+")
    predicted_at = models.DateTimeField()
    outcome = models.FloatField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["endpoint", "route"], name="serving_feedback_route")]


class ScoringJob(OwnedModel):
    """Batch scoring of an uploaded file or a training set with one model version, as a job."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class ResourceClass(models.TextChoices):
        CPU = "cpu", "CPU"
        GPU = "gpu", "GPU"

    TERMINAL = (State.SUCCEEDED, State.FAILED, State.CANCELLED)
    ACTIVE = (State.QUEUED, State.RUNNING, State.RETRYING)

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    source = models.JSONField(default=dict, help_text='{"upload": filename, "format"} or {"training_set": id}')
    input_blob = models.ForeignKey(VaultBlob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    training_set = models.ForeignKey(
        "features.TrainingSet", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resource_class = models.CharField(max_length=3, choices=ResourceClass.choices, default=ResourceClass.CPU)
    region = models.CharField(max_length=41, default="default")
    queue = models.CharField(max_length=60)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    rows_total = models.PositiveBigIntegerField(null=True, blank=True)
    rows_done = models.PositiveBigIntegerField(default=0)
    parts = models.JSONField(default=list, blank=True, help_text="finished chunks: [{blob, rows}] (resume point)")
    output_blob = models.ForeignKey(VaultBlob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    digest = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the predictions file")
    lineage = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    warning = models.CharField(max_length=500, blank=True, help_text="e.g. no GPU worker online yet")
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"scoring job {self.pk}"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL


ScoringJobUserObjectPermission, ScoringJobGroupObjectPermission = object_permission_models(ScoringJob)
