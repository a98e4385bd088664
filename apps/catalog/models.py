"""Registered models, their immutable versions, aliases and model cards."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from apps.core.models import OwnedModel, VaultBlob
from apps.core.names import name_validator
from apps.core.permission_tables import object_permission_models

ALIAS_RE = r"^[a-z][a-z0-9_-]{0,39}$"
alias_validator = RegexValidator(ALIAS_RE, "Start with a letter; then up to 39 lowercase letters, digits, - or _.")
FRAMEWORKS = ("pytorch", "sklearn", "tensorflow", "keras", "xgboost", "lightgbm", "onnx", "other")


class RegisteredModel(OwnedModel):
    name = models.CharField(max_length=100, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="list of lowercase slugs")
    # Denormalised from the newest version so that the catalog list needs no per-row queries.
    latest_version = models.PositiveIntegerField(default=0)
    latest_version_at = models.DateTimeField(null=True, blank=True)
    framework = models.CharField(max_length=20, blank=True, db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Residency (issue 17): where the model's artifacts may be stored, served and downloaded;
    # "default" = unpinned. Fixed at creation (apps/core/residency.py).
    region = models.CharField(max_length=41, default="default", db_index=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["-updated_at"]), models.Index(fields=["owner", "name"])]

    def __str__(self) -> str:
        return self.name


RegisteredModelUserObjectPermission, RegisteredModelGroupObjectPermission = object_permission_models(RegisteredModel)


IMMUTABLE_VERSION_FIELDS = (
    "model_id",
    "version",
    "artifact_id",
    "state_dict_id",
    "signature",
    "framework",
    "opset",
    "producer",
    "run_id",
    "training_set",
    "training_data_digest",
    "feature_views",
    "code_version",
    "package_versions",
    "seed",
    "onnx_parity",
    "region",
    "source",
    "created_by_id",
)
MUTABLE_VERSION_FIELDS = ("description", "tags", "metrics")


class ImmutableVersionError(Exception):
    pass


class ModelVersion(models.Model):
    """One immutable version: only description, tags and metrics may change after creation."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    artifact = models.ForeignKey(VaultBlob, on_delete=models.PROTECT, related_name="+")
    state_dict = models.ForeignKey(VaultBlob, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    signature = models.JSONField(default=dict)
    framework = models.CharField(max_length=20, default="onnx")
    opset = models.PositiveIntegerField(null=True, blank=True)
    producer = models.CharField(max_length=120, blank=True)
    # Lineage: loose references so the catalog serves outside scripts without other apps.
    run_id = models.CharField(max_length=64, blank=True)
    training_set = models.CharField(max_length=200, blank=True)
    training_data_digest = models.CharField(max_length=128, blank=True)
    feature_views = models.JSONField(default=list, blank=True)
    code_version = models.CharField(max_length=200, blank=True)
    package_versions = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    # The ONNX Runtime parity check made when the version was exported from torch (training jobs,
    # `version_register_from_torch`): max_abs_diff, tolerance, threshold, exporter,
    # batch_sizes_checked. Empty for an ONNX file uploaded as it is, which nothing checked.
    onnx_parity = models.JSONField(default=dict, blank=True)
    # Residency: the model's region, or the region of the run it was built from when the model is
    # unpinned (a version carries its own region so that one unpinned model can hold versions trained
    # on data of different regions, each served and downloaded only there).
    region = models.CharField(max_length=41, default="default")
    # Where the file came from when it was registered through the MLflow-compatible API: the run
    # artifact's URI (`mlflow-artifacts:/...`), answered as MLflow's `source`. Empty otherwise.
    source = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["model", "-version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="catalog_version_unique")]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}" if self.model_id else f"v{self.version}"

    def save(self, *args, **kwargs):
        frozen = getattr(self, "_frozen", None)
        if frozen is not None:
            changed = sorted(f for f, v in frozen.items() if getattr(self, f) != v)
            if changed:
                raise ImmutableVersionError(
                    f"Model versions are immutable: {', '.join(changed)} cannot change; register a new version."
                )
        super().save(*args, **kwargs)
        self._frozen = {f: getattr(self, f) for f in IMMUTABLE_VERSION_FIELDS}

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._frozen = {f: getattr(instance, f) for f in IMMUTABLE_VERSION_FIELDS if f in instance.__dict__}
        return instance

    @property
    def artifact_filename(self) -> str:
        return f"{self.model.name}-v{self.version}.onnx"

    @property
    def state_dict_filename(self) -> str:
        return f"{self.model.name}-v{self.version}.safetensors"


class Alias(models.Model):
    """A named pointer (staging, production, champion, ...) to one version of a model."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=40, validators=[alias_validator])
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    protected = models.BooleanField(
        default=False, help_text="A protected alias moves only through an approved promotion."
    )
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    moved_at = models.DateTimeField(auto_now=True)
    promotion_ref = models.CharField(max_length=64, blank=True, help_text="the promotion that last moved it")

    class Meta:
        ordering = ["model", "name"]
        verbose_name_plural = "aliases"
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="catalog_alias_unique")]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


CARD_SECTIONS = (
    ("intended_use", "Intended use"),
    ("out_of_scope", "Out-of-scope uses"),
    ("training_data", "Training data"),
    ("evaluation", "Evaluation"),
    ("limitations", "Limitations"),
    ("ethical_considerations", "Ethical considerations"),
    ("owners_contacts", "Owners and contacts"),
)
CARD_MIN_CHARS = 20


class ModelCard(models.Model):
    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="card")
    intended_use = models.TextField(blank=True)
    out_of_scope = models.TextField(blank=True)
    training_data = models.TextField(blank=True)
    evaluation = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    ethical_considerations = models.TextField(blank=True)
    owners_contacts = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"Model card of {self.model.name}" if self.model_id else "Model card"

    def missing_sections(self) -> list[str]:
        """Sections with less than CARD_MIN_CHARS characters of content."""
        return [label for field, label in CARD_SECTIONS if len((getattr(self, field) or "").strip()) < CARD_MIN_CHARS]

    @property
    def completeness(self) -> float:
        return round(1 - len(self.missing_sections()) / len(CARD_SECTIONS), 3)

    @property
    def is_complete(self) -> bool:
        return not self.missing_sections()
