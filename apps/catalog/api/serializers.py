"""Thin serializers: shapes for the API and its OpenAPI schema; rules live in services."""

from __future__ import annotations

import json

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog.models import CARD_SECTIONS, FRAMEWORKS, Alias, ModelCard, ModelVersion, RegisteredModel
from apps.catalog.services import LINEAGE_FIELDS


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
            "aliases", "archived", "created_at", "updated_at", "url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_team(self, obj) -> str | None:
        return obj.team.slug if obj.team_id else None

    def get_aliases(self, obj) -> dict[str, int]:
        return {a.name: a.version.version for a in obj.aliases.all()}

    def get_archived(self, obj) -> bool:
        return obj.archived_at is not None

    def get_url(self, obj) -> str:
        return reverse("api-v1:catalog:model-detail", args=[obj.name])


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

    def get_permissions(self, obj) -> list[str]:
        from apps.core.permissions import can

        user = self.context["request"].user
        return [a for a in ("view", "change", "delete") if can(user, a, obj)]


class ModelCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="slug, unique: lowercase letters, digits, hyphens")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False, default=list)
    team = serializers.CharField(required=False, allow_null=True, default=None, help_text="slug of a team you are in")


class ModelUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False)


class BlobSerializer(serializers.Serializer):
    sha256 = serializers.CharField()
    size = serializers.IntegerField(source="plaintext_size")


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
            "artifact", "state_dict", "lineage", "aliases", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def _blob(self, blob, obj, route) -> dict | None:
        if blob is None:
            return None
        url = reverse(f"api-v1:catalog:{route}", args=[obj.model.name, obj.version])
        return {"sha256": blob.sha256, "size": blob.plaintext_size, "download_url": url}

    def get_artifact(self, obj) -> dict:
        return self._blob(obj.artifact, obj, "version-artifact")

    def get_state_dict(self, obj) -> dict | None:
        return self._blob(obj.state_dict, obj, "version-state-dict")

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


class VersionUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False)
    metrics = serializers.DictField(child=serializers.FloatField(), required=False)


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
        return reverse("api-v1:catalog:version-detail", args=[obj.model.name, obj.version.version])


class AliasMoveSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
    protected = serializers.BooleanField(required=False, help_text="only when creating the alias")


class AliasProtectionSerializer(serializers.Serializer):
    protected = serializers.BooleanField()


class ShareSerializer(serializers.Serializer):
    user = serializers.CharField(required=False, help_text="username")
    team = serializers.CharField(required=False, help_text="team slug")
    role = serializers.ChoiceField(choices=["viewer", "editor"], default="viewer")

    def validate(self, attrs):
        if bool(attrs.get("user")) == bool(attrs.get("team")):
            raise serializers.ValidationError({"detail": "Give exactly one of user or team."})
        return attrs
