"""Thin serializers: shapes for the API and its OpenAPI schema; rules live in services.

Input (`...Serializer` read by `validated(...)`) and output classes are separate. Output URLs are
built from one `reverse()` per process, not one per row: a list page would pay for each.
"""

from __future__ import annotations

import json
from functools import cache

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.models import CARD_SECTIONS, FRAMEWORKS, Alias, ModelCard, ModelVersion, RegisteredModel
from apps.catalog.selectors import SORTS, ModelRow
from apps.catalog.validation import LINEAGE_FIELDS
from apps.core.api.rows import iso
from apps.core.permissions import can


@cache
def _models_url() -> str:
    """`/api/v1/models/`: every catalog API URL starts with it and continues with the model name."""
    return reverse("api-v1:catalog:model-list")


def model_api_url(name: str) -> str:
    return f"{_models_url()}{name}/"


def version_api_url(name: str, number: int) -> str:
    return f"{_models_url()}{name}/versions/{number}/"


class ModelFiltersSerializer(serializers.Serializer):
    """The model list's query string (API and OpenAPI; the page reads the same names)."""

    q = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="search in name and description"
    )
    tag = serializers.CharField(required=False, allow_blank=True, max_length=40, help_text="has this tag")
    owner = serializers.CharField(required=False, allow_blank=True, max_length=150, help_text="owner's username")
    alias = serializers.CharField(
        required=False, allow_blank=True, max_length=40, help_text="has an alias with this name"
    )
    framework = serializers.ChoiceField(
        choices=FRAMEWORKS, required=False, allow_blank=True, help_text="framework of the newest version"
    )
    archived = serializers.BooleanField(required=False, default=False, help_text="true: archived models too")
    sort = serializers.ChoiceField(choices=list(SORTS), required=False, default="name")


class RegisteredModelSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    archived = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "name", "description", "tags", "owner", "team", "latest_version", "latest_version_at", "framework",
            "aliases", "archived", "region", "created_at", "updated_at", "url",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, obj) -> dict:
        """The same dict as DRF's field-by-field rendering, built directly from a list's
        `ModelRow` or a model instance (apps/core/api/rows.py)."""
        row = obj if isinstance(obj, ModelRow) else ModelRow.of(obj)
        tz = self.__dict__.get("_tz") or self.__dict__.setdefault("_tz", timezone.get_current_timezone())
        return {
            "name": row.name,
            "description": row.description,
            "tags": row.tags,
            "owner": row.owner_username,
            "team": row.team_slug,
            "latest_version": row.latest_version,
            "latest_version_at": iso(row.latest_version_at, tz),
            "framework": row.framework,
            "aliases": self.get_aliases(obj),
            "archived": row.archived_at is not None,
            "region": row.region,
            "created_at": iso(row.created_at, tz),
            "updated_at": iso(row.updated_at, tz),
            "url": model_api_url(row.name),
        }

    def get_team(self, obj) -> str | None:
        return obj.team.slug if obj.team_id else None

    def get_aliases(self, obj) -> dict[str, int]:
        rows = getattr(obj, "alias_list", None)  # a list page: selectors.with_aliases, one query
        if rows is None:
            return {a.name: a.version.version for a in obj.aliases.select_related("version").order_by("name")}
        return {a.name: a.version for a in rows}

    def get_archived(self, obj) -> bool:
        return obj.archived_at is not None

    def get_url(self, obj) -> str:
        return model_api_url(obj.name)


class ModelCardSerializer(serializers.ModelSerializer):
    completeness = serializers.FloatField(read_only=True)
    missing_sections = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ModelCard
        fields = [f for f, _ in CARD_SECTIONS] + ["completeness", "missing_sections", "updated_at"]
        read_only_fields = ["completeness", "missing_sections", "updated_at"]
        extra_kwargs = {f: {"required": False, "allow_blank": True} for f, _ in CARD_SECTIONS}


class RegisteredModelDetailSerializer(RegisteredModelSerializer):
    card = ModelCardSerializer(read_only=True)
    permissions = serializers.SerializerMethodField()

    class Meta(RegisteredModelSerializer.Meta):
        fields = [*RegisteredModelSerializer.Meta.fields, "card", "permissions"]
        read_only_fields = fields

    to_representation = serializers.ModelSerializer.to_representation  # one object: DRF's own

    def get_permissions(self, obj) -> list[str]:
        user = self.context["request"].user
        return [a for a in ("view", "change", "delete") if can(user, a, obj)]


class ModelCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="slug, unique: lowercase letters, digits, hyphens")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False, default=list)
    team = serializers.CharField(required=False, allow_null=True, default=None, help_text="slug of a team you are in")
    region = serializers.CharField(
        required=False, allow_blank=True, default="default", max_length=41,
        help_text='residency region its artifacts are pinned to ("default" = unpinned); one of PORTAL_REGIONS',
    )  # fmt: skip


class ModelUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False)


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    artifact = serializers.SerializerMethodField()
    state_dict = serializers.SerializerMethodField()
    lineage = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "model", "version", "description", "tags", "metrics", "signature", "framework", "opset", "producer",
            "artifact", "state_dict", "lineage", "onnx_parity", "aliases", "region", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def _blob(self, blob, obj, file: str) -> dict | None:
        if blob is None:
            return None
        url = version_api_url(obj.model.name, obj.version) + file
        return {"sha256": blob.sha256, "size": blob.plaintext_size, "download_url": url}

    def get_artifact(self, obj) -> dict:
        return self._blob(obj.artifact, obj, "artifact")

    def get_state_dict(self, obj) -> dict | None:
        return self._blob(obj.state_dict, obj, "state-dict")

    def get_lineage(self, obj) -> dict:
        return {f: getattr(obj, f) for f in LINEAGE_FIELDS}

    def get_aliases(self, obj) -> list[str]:
        return sorted(a.name for a in obj.aliases.all())


@extend_schema_field(OpenApiTypes.STR)
class JSONishField(serializers.Field):
    """Multipart carries text: accept a JSON document (or a real object in JSON bodies)."""

    def __init__(self, *, kind: type, **kwargs):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            if self.kind is list and data.strip() and not data.strip().startswith("["):
                return [t for t in data.replace(",", " ").split() if t]
            try:
                data = json.loads(data) if data.strip() else self.kind()
            except ValueError:
                raise serializers.ValidationError(f"Not valid JSON; give a JSON {self.kind.__name__}.") from None
        if not isinstance(data, self.kind):
            raise serializers.ValidationError(f"Give a JSON {self.kind.__name__}.")
        return data

    def to_representation(self, value):
        return value


class VersionUploadSerializer(serializers.Serializer):
    artifact = serializers.FileField(help_text="the ONNX model file (required)")
    state_dict = serializers.FileField(required=False, help_text="optional PyTorch weights in safetensors format")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = JSONishField(kind=list, required=False, default=list, help_text='JSON list or "a, b"')
    metrics = JSONishField(kind=dict, required=False, default=dict, help_text='JSON object, e.g. {"auc": 0.93}')
    lineage = JSONishField(
        kind=dict, required=False, default=dict, help_text=f"JSON object with any of: {', '.join(LINEAGE_FIELDS)}"
    )
    framework = serializers.ChoiceField(
        choices=[("", "detect"), *[(f, f) for f in FRAMEWORKS]], required=False, default=""
    )
    # Lineage fields may also come one by one as form fields.
    run_id = serializers.CharField(required=False, allow_blank=True)
    training_set = serializers.CharField(required=False, allow_blank=True)
    training_data_digest = serializers.CharField(required=False, allow_blank=True)
    code_version = serializers.CharField(required=False, allow_blank=True)
    seed = serializers.CharField(required=False, allow_blank=True)
    feature_views = JSONishField(kind=list, required=False)
    package_versions = JSONishField(kind=dict, required=False)

    def validate(self, attrs: dict) -> dict:
        """One `lineage` object: the JSON field, with lineage fields sent one by one laid over it."""
        lineage = dict(attrs.get("lineage") or {})
        for field in LINEAGE_FIELDS:
            value = attrs.pop(field, None)
            if value not in (None, ""):
                lineage[field] = value
        return {**attrs, "lineage": lineage}


class VersionUpdateSerializer(serializers.Serializer):
    """Description, tags and metrics change; every other field of a version is named here too, so
    that sending one is refused by the service with 409 (immutable) rather than as unknown."""

    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False)
    metrics = serializers.DictField(child=serializers.FloatField(), required=False)

    def get_fields(self) -> dict:
        fields = super().get_fields()
        for name in (*ModelVersionSerializer.Meta.fields, *LINEAGE_FIELDS):
            if name not in fields:
                fields[name] = serializers.JSONField(required=False, help_text="immutable: refused with 409")
        return fields


class AliasSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    alias = serializers.CharField(source="name")
    version = serializers.IntegerField(source="version.version")
    moved_by = serializers.CharField(source="moved_by.username")
    version_url = serializers.SerializerMethodField()

    class Meta:
        model = Alias
        fields = ["model", "alias", "version", "protected", "moved_by", "moved_at", "promotion_ref", "version_url"]
        read_only_fields = fields

    def get_version_url(self, obj) -> str:
        return version_api_url(obj.model.name, obj.version.version)


class AliasMoveSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    protected = serializers.BooleanField(required=False, help_text="only when creating the alias")


class AliasProtectionSerializer(serializers.Serializer):
    protected = serializers.BooleanField()
