"""Request and response shapes: input serializers (read with `validated` / `validated_query`) and
output serializers; the rules of names, schemas and sharing live in the services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.permissions import can_view_pii
from apps.features import selectors, stats
from apps.features.models import (
    DTYPES,
    KEY_DTYPES,
    MAX_RETENTION_DAYS,
    Entity,
    FeatureView,
    MaterializationJob,
    TrainingSet,
)
from apps.features.training_sets import FORMATS


class JoinKeySerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.ChoiceField(choices=KEY_DTYPES)


class FeatureSchemaSerializer(serializers.Serializer):
    name = serializers.CharField()
    dtype = serializers.ChoiceField(choices=DTYPES)
    description = serializers.CharField(required=False, allow_blank=True)
    pii = serializers.BooleanField(required=False, default=False)


class EntitySerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.slug", default=None, read_only=True)
    join_keys = JoinKeySerializer(many=True)

    class Meta:
        model = Entity
        fields = ["id", "name", "description", "join_keys", "owner", "team", "created_at", "updated_at"]


class EntityCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    join_keys = serializers.JSONField(help_text='[{"name": "customer_id", "dtype": "int64"}]')
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug: the team may view the entity")


class FeatureViewSerializer(serializers.ModelSerializer):
    entity = serializers.CharField(source="entity.name")
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.slug", default=None, read_only=True)
    features = FeatureSchemaSerializer(many=True)

    class Meta:
        model = FeatureView
        fields = [
            "id", "name", "entity", "description", "tags", "region", "ttl_seconds", "retention_days", "source",
            "version", "features", "owner", "team", "row_count", "last_ingested_at", "newest_event_at",
            "last_materialized_at", "retention_applied_at", "created_at", "updated_at",
        ]  # fmt: skip


class MaterializationJobSerializer(serializers.ModelSerializer):
    view = serializers.CharField(source="view.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)

    class Meta:
        model = MaterializationJob
        fields = [
            "id", "view", "version", "requested_by", "start", "end", "state", "progress", "rows_read", "keys_written",
            "queue", "error", "attempt", "cancel_requested", "log", "created_at", "started_at", "finished_at",
        ]  # fmt: skip


class FeatureViewDetailSerializer(FeatureViewSerializer):
    statistics = serializers.SerializerMethodField()
    join_keys = serializers.JSONField(source="entity.join_keys", read_only=True)
    versions = serializers.SerializerMethodField()
    materializations = serializers.SerializerMethodField()
    can_view_pii = serializers.SerializerMethodField()

    class Meta(FeatureViewSerializer.Meta):
        fields = [*FeatureViewSerializer.Meta.fields, "join_keys", "statistics", "versions", "materializations",
                  "can_view_pii"]  # fmt: skip

    def get_can_view_pii(self, obj) -> bool:
        return can_view_pii(self.context["request"].user, obj)

    def get_statistics(self, obj) -> dict:
        """PII features: counts and distinct counts only, whoever asks (values never leave in statistics)."""
        return stats.public(obj.statistics, set(obj.pii_features))

    def get_versions(self, obj) -> list[dict]:
        return [
            {"version": v.version, "features": [f["name"] for f in v.features], "reason": v.reason,
             "created_at": v.created_at}
            for v in selectors.versions_of(obj)
        ]  # fmt: skip

    def get_materializations(self, obj) -> list[dict]:
        return MaterializationJobSerializer(selectors.materializations_of(obj, limit=10), many=True).data


class FeatureViewFiltersSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text=selectors.VIEW_FILTERS["q"])
    tag = serializers.CharField(required=False, allow_blank=True, max_length=60, help_text="has this tag")
    entity = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="entity name")
    region = serializers.CharField(required=False, allow_blank=True, max_length=41, help_text="residency region")
    owner = serializers.CharField(required=False, allow_blank=True, max_length=150, help_text="owner username")
    source = serializers.ChoiceField(choices=FeatureView.Source.values, required=False, help_text="batch or push")


class FeatureViewCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    entity = serializers.CharField(help_text="entity name")
    features = serializers.JSONField(help_text='[{"name", "dtype", "description", "pii"}]')
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.JSONField(required=False, default=list)
    region = serializers.CharField(required=False, default="default")
    ttl_seconds = serializers.JSONField(required=False, default=0, help_text="0 = never expires")
    source = serializers.ChoiceField(choices=FeatureView.Source.values, required=False, default="batch")
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug: the team may view the view")
    retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_RETENTION_DAYS,
        help_text="delete data older than this many days (daily); null = keep forever",
    )  # fmt: skip


class FeatureViewUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.JSONField(required=False)
    ttl_seconds = serializers.JSONField(required=False)
    features = serializers.JSONField(required=False, help_text="a removed or retyped feature makes a new version")
    source = serializers.CharField(required=False)
    region = serializers.CharField(required=False)
    retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_RETENTION_DAYS,
        help_text="delete data older than this many days (daily); null = keep forever",
    )  # fmt: skip


class IngestResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    partitions = serializers.ListField(child=serializers.CharField())
    version = serializers.IntegerField()


class PushResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    keys_written = serializers.IntegerField()
    version = serializers.IntegerField()


class RetentionResultSerializer(serializers.Serializer):
    retention_days = serializers.IntegerField()
    cutoff = serializers.DateTimeField(help_text="data with event time before this went")
    partitions = serializers.IntegerField(help_text="offline partition files removed")
    rows = serializers.IntegerField(help_text="offline rows removed")
    files = serializers.ListField(child=serializers.CharField())
    dates = serializers.ListField(child=serializers.DateField())
    versions = serializers.ListField(child=serializers.IntegerField())
    online_keys = serializers.IntegerField(help_text="online-store entities removed")


class MaterializeSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}]})
class JoinKeyValueField(serializers.Field):
    """A join key value as the online store keys it: a string or an integer (documents the schema;
    the lean path parses the body itself)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError("Join key values are strings or integers.")
        return data

    def to_representation(self, value):
        return value


class OnlineRequestSerializer(serializers.Serializer):
    features = serializers.ListField(child=serializers.CharField(), help_text='["view:feature", ...]')
    entities = serializers.DictField(
        child=serializers.ListField(child=JoinKeyValueField()), help_text='{"customer_id": [1, 2]}'
    )


class OnlineFeatureResultSerializer(serializers.Serializer):
    values = serializers.ListField(child=serializers.JSONField(allow_null=True))
    statuses = serializers.ListField(child=serializers.ChoiceField(choices=["present", "missing", "expired"]))


class OnlineResponseSerializer(serializers.Serializer):
    entities = serializers.DictField(child=serializers.ListField(child=JoinKeyValueField()))
    features = serializers.ListField(child=serializers.CharField())
    results = serializers.DictField(child=OnlineFeatureResultSerializer(), help_text="per feature, in entity order")
    event_timestamps = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(allow_null=True)),
        help_text="per view, in entity order: ISO 8601 UTC, null where missing",
    )
    masked = serializers.ListField(child=serializers.CharField(), help_text="PII features you may not see unmasked")


class TrainingSetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.CharField(source="team.slug", default=None, read_only=True)

    class Meta:
        model = TrainingSet
        fields = ["id", "name", "features", "region", "row_count", "columns", "entity_digest", "digest", "lineage",
                  "owner", "team", "created_at"]  # fmt: skip


@extend_schema_field(serializers.ListField(child=serializers.CharField()))
class FeatureRefsField(serializers.Field):
    """A JSON list of "view:feature" references, or one comma-separated string (multipart forms)."""

    def to_internal_value(self, data) -> list:
        if isinstance(data, str):
            return [ref.strip() for ref in data.split(",") if ref.strip()]
        if isinstance(data, list):
            return data
        raise serializers.ValidationError('Give a list of "view:feature" references.')

    def to_representation(self, value) -> list:
        return value


class TrainingSetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    features = FeatureRefsField(help_text='["view:feature", ...] (JSON list, or comma-separated in multipart)')
    entity_rows = serializers.JSONField(required=False, help_text="rows with join keys, event_timestamp and labels")
    entity_table = serializers.FileField(required=False, help_text="CSV or Parquet file instead of entity_rows")
    team = serializers.CharField(required=False, allow_blank=True, help_text="team slug: the team may view the set")

    def validate(self, data: dict) -> dict:
        if ("entity_rows" in data) == ("entity_table" in data):
            raise serializers.ValidationError(
                {"entity_rows": ["Give entity_rows (JSON) or an entity_table file (CSV/Parquet), one of them."]}
            )
        if "entity_rows" in data and not isinstance(data["entity_rows"], list):
            raise serializers.ValidationError({"entity_rows": ["Give a JSON list of rows."]})
        return data


class TrainingSetDataQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(FORMATS), default="parquet", help_text="parquet, csv or json")
