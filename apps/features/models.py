"""Entities, versioned feature views, offline partitions, materialization jobs, training sets."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from apps.core.models import OwnedModel
from apps.core.permission_tables import object_permission_models

SLUG_RE = r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$"
slug_validator = RegexValidator(SLUG_RE, "Use 1-100 lowercase letters, digits and inner hyphens, e.g. customer-risk.")
DTYPES = ("int64", "float64", "string", "bool")
KEY_DTYPES = ("int64", "string")
MAX_RETENTION_DAYS = 36500


class Entity(OwnedModel):
    """What features describe (a customer, a patient): a name and its typed join keys."""

    name = models.CharField(max_length=100, unique=True, validators=[slug_validator])
    description = models.TextField(blank=True)
    join_keys = models.JSONField(help_text='[{"name": "customer_id", "dtype": "int64"}]')

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "entities"

    def __str__(self) -> str:
        return self.name

    @property
    def key_names(self) -> list[str]:
        return [k["name"] for k in self.join_keys]


class FeatureView(OwnedModel):
    """A typed group of features of one entity. Breaking schema changes bump `version`."""

    class Source(models.TextChoices):
        BATCH = "batch", "Batch (ingest, then materialize)"
        PUSH = "push", "Push (written straight to the online store)"

    name = models.CharField(max_length=100, unique=True, validators=[slug_validator])
    entity = models.ForeignKey(Entity, on_delete=models.PROTECT, related_name="views")
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    region = models.CharField(max_length=41, default="default", db_index=True)
    ttl_seconds = models.PositiveBigIntegerField(default=0, help_text="0 = values never expire")
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_RETENTION_DAYS)],
        help_text="delete data whose event time is older than this many days (empty = keep forever)",
    )
    retention_applied_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.BATCH)
    version = models.PositiveIntegerField(default=1)
    features = models.JSONField(help_text='[{"name", "dtype", "description", "pii"}] of the current version')
    statistics = models.JSONField(default=dict, blank=True)
    row_count = models.BigIntegerField(default=0)
    last_ingested_at = models.DateTimeField(null=True, blank=True)
    newest_event_at = models.DateTimeField(null=True, blank=True)
    last_materialized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [("view_pii", "Can see unmasked PII values")]
        indexes = [models.Index(fields=["-updated_at"])]

    def __str__(self) -> str:
        return self.name

    @property
    def feature_names(self) -> list[str]:
        return [f["name"] for f in self.features]

    @property
    def pii_features(self) -> list[str]:
        return [f["name"] for f in self.features if f.get("pii")]


class FeatureViewVersion(models.Model):
    view = models.ForeignKey(FeatureView, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    features = models.JSONField()
    join_keys = models.JSONField()
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["view", "-version"]
        constraints = [models.UniqueConstraint(fields=["view", "version"], name="features_view_version_unique")]


class Partition(models.Model):
    """One Parquet file of the offline store. Files without a row here are never read."""

    view = models.ForeignKey(FeatureView, on_delete=models.CASCADE, related_name="partitions")
    version = models.PositiveIntegerField()
    region = models.CharField(max_length=41)
    date = models.DateField()
    path = models.CharField(max_length=500, unique=True, help_text="relative to FEATURE_STORE_ROOT")
    rows = models.BigIntegerField()
    min_event_at = models.DateTimeField()
    max_event_at = models.DateTimeField()
    origin = models.CharField(max_length=10, default="ingest")  # ingest | push
    ingested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["view", "version", "date", "id"]
        indexes = [models.Index(fields=["view", "version", "date"])]


class MaterializationJob(models.Model):
    """A copy of a view's [start, end) rows from offline to online. The row is the truth about the
    job (apps/features/recovery.py finds the ones whose message or worker is gone): `attempt` counts
    the deliveries that claimed it, `heartbeat_at` is the running worker's last sign of life."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINAL = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    view = models.ForeignKey(FeatureView, on_delete=models.CASCADE, related_name="materializations")
    version = models.PositiveIntegerField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    rows_read = models.BigIntegerField(default=0)
    keys_written = models.BigIntegerField(default=0)
    queue = models.CharField(max_length=60, default="default")
    error = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0, help_text="deliveries that started the job")
    cancel_requested = models.BooleanField(default=False)
    log = models.TextField(blank=True, help_text="one line per recovery or cancel, oldest first")
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="when its task was last sent")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="the running worker's last sign of life")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class TrainingSet(OwnedModel):
    """A stored point-in-time-correct join: what training jobs consume."""

    name = models.CharField(max_length=100, validators=[slug_validator])
    features = models.JSONField(help_text='["view:feature", ...]')
    region = models.CharField(max_length=41, default="default")
    path = models.CharField(max_length=500, blank=True, help_text="relative to FEATURE_STORE_ROOT")
    row_count = models.BigIntegerField(default=0)
    columns = models.JSONField(default=list)
    entity_digest = models.CharField(max_length=64)
    digest = models.CharField(max_length=64, blank=True)
    lineage = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


EntityUserObjectPermission, EntityGroupObjectPermission = object_permission_models(Entity)
FeatureViewUserObjectPermission, FeatureViewGroupObjectPermission = object_permission_models(FeatureView)
TrainingSetUserObjectPermission, TrainingSetGroupObjectPermission = object_permission_models(TrainingSet)
