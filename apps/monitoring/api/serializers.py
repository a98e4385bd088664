"""Shapes of monitoring's API (shared/API.md "### Monitoring"): alerts, drift reports, reference
profiles, an endpoint's monitoring overview; and the validated inputs."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.monitoring.models import Alert, DriftReport, ReferenceProfile
from apps.monitoring.selectors import alert_history


class AlertSerializer(serializers.ModelSerializer):
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    object = serializers.SerializerMethodField()
    history = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = ["id", "kind", "severity", "state", "dedup_key", "count", "title", "description", "data",
                  "first_seen", "last_seen", "acknowledged_at", "resolved_at", "assignee", "object", "history"]  # fmt: skip

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_object(self, alert: Alert) -> dict | None:
        for field in ("endpoint", "model", "feature_view"):
            subject = getattr(alert, field) if getattr(alert, f"{field}_id") else None
            if subject is not None:
                return {"type": field, "name": subject.name, "url": alert.object_url}
        return {"type": "platform", "name": "", "url": alert.object_url} if alert.object_url else None

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_history(self, alert: Alert) -> list[dict]:
        if not self.context.get("history"):
            return []
        return [entry | {"at": entry["at"].isoformat()} for entry in alert_history(alert)]


class AlertFiltersSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Alert.State.choices, required=False)
    severity = serializers.ChoiceField(choices=Alert.Severity.choices, required=False)
    kind = serializers.ChoiceField(choices=Alert.Kind.choices, required=False)
    endpoint = serializers.CharField(required=False, max_length=100)
    model = serializers.CharField(required=False, max_length=100)


class AlertPatchSerializer(serializers.Serializer):
    assignee = serializers.CharField(allow_null=True, allow_blank=True, max_length=150)


class AlertActionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ReportSerializer(serializers.ModelSerializer):
    endpoint = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    feature_view = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    version = serializers.SerializerMethodField()
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    reference = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()

    class Meta:
        model = DriftReport
        fields = ["id", "subject", "endpoint", "route", "version", "feature_view", "reference", "current", "trigger",
                  "state", "progress", "status", "quality_status", "summary", "thresholds", "overrides", "error",
                  "requested_by", "created_at", "started_at", "finished_at"]  # fmt: skip

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_version(self, report: DriftReport) -> dict | None:
        version = report.version if report.version_id else None
        return {"model": version.model.name, "version": version.version} if version else None

    @extend_schema_field(serializers.DictField())
    def get_reference(self, report: DriftReport) -> dict:
        window = {"start": report.reference_start, "end": report.reference_end} if report.reference_start else {}
        return {"rows": report.rows_reference, "source": (report.summary or {}).get("reference_source", ""), **window}

    @extend_schema_field(serializers.DictField())
    def get_current(self, report: DriftReport) -> dict:
        return {"rows": report.rows_current, "start": report.start, "end": report.end}


class ReportDetailSerializer(ReportSerializer):
    features = serializers.SerializerMethodField()
    predictions = serializers.JSONField(read_only=True)
    quality = serializers.SerializerMethodField()

    class Meta(ReportSerializer.Meta):
        fields = [*ReportSerializer.Meta.fields, "features", "predictions", "quality"]

    @extend_schema_field(serializers.DictField())
    def get_features(self, report: DriftReport) -> dict:
        return self.context["masked"]["features"]

    @extend_schema_field(serializers.DictField())
    def get_quality(self, report: DriftReport) -> dict:
        return self.context["masked"]["quality"]


class ReportFiltersSerializer(serializers.Serializer):
    endpoint = serializers.CharField(required=False, max_length=100)
    feature_view = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=DriftReport.Status.choices, required=False)
    state = serializers.ChoiceField(choices=DriftReport.State.choices, required=False)


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class ReportCreateSerializer(serializers.Serializer):
    endpoint = serializers.CharField(required=False, max_length=100)
    route = serializers.CharField(required=False, allow_blank=True, max_length=40)
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    feature_view = serializers.CharField(required=False, max_length=100)
    reference = WindowSerializer(required=False)
    current = WindowSerializer(required=False)
    thresholds = serializers.JSONField(required=False)
    overrides = serializers.JSONField(required=False)

    def validate(self, data: dict) -> dict:
        if ("endpoint" in data) == ("feature_view" in data):
            raise serializers.ValidationError({"endpoint": ["Give either endpoint (with start, end) or feature_view "
                                                            "(with reference and current windows)."]})  # fmt: skip
        if "endpoint" in data:
            missing = [f for f in ("start", "end") if f not in data]
        else:
            missing = [f for f in ("reference", "current") if f not in data]
        if missing:
            raise serializers.ValidationError({f: ["This field is required."] for f in missing})
        return data


class ProfileSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    built_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    features = serializers.SerializerMethodField()
    predictions = serializers.SerializerMethodField()

    class Meta:
        model = ReferenceProfile
        fields = ["model", "version", "state", "source", "rows", "columns", "features", "predictions", "error",
                  "built_by", "built_at"]  # fmt: skip

    @extend_schema_field(serializers.DictField())
    def get_features(self, profile: ReferenceProfile) -> dict:
        return {name: _readable(entry) for name, entry in (profile.data or {}).get("features", {}).items()}

    @extend_schema_field(serializers.DictField())
    def get_predictions(self, profile: ReferenceProfile) -> dict:
        return {name: _readable(entry) for name, entry in (profile.data or {}).get("predictions", {}).items()}


def _readable(entry: dict) -> dict:
    """A feature's profile without the packed grid the checks use (the API shows what people read)."""
    shown = {k: v for k, v in entry.items() if k != "grid"}
    if entry.get("n"):
        shown["missing_rate"] = (entry.get("missing") or 0) / (entry["n"] + (entry.get("missing") or 0))
    return shown


class ProfileCreateSerializer(serializers.Serializer):
    file = serializers.FileField(required=False)


class MonitorPatchSerializer(serializers.Serializer):
    schedule_minutes = serializers.IntegerField(required=False, min_value=0, max_value=44640)
    window_minutes = serializers.IntegerField(required=False, min_value=1, max_value=44640)
    thresholds = serializers.JSONField(required=False)
    overrides = serializers.JSONField(required=False)


class OverviewQuerySerializer(serializers.Serializer):
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=1440, default=60)
    days = serializers.IntegerField(required=False, min_value=1, max_value=90, default=14)
