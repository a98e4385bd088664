from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from apps.experiments.models import Experiment, Run, RunArtifact


class ExperimentSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    run_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Experiment
        fields = ["id", "name", "description", "tags", "owner", "team", "run_count", "created_at", "updated_at"]
        read_only_fields = ["id", "owner", "team", "run_count", "created_at", "updated_at"]


class ExperimentCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)
    team = serializers.CharField(required=False, allow_null=True, default=None, help_text="team slug to share with")


class ExperimentUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)


class RunSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    metrics = serializers.SerializerMethodField(help_text="latest value per metric key")

    class Meta:
        model = Run
        fields = [
            "id",
            "experiment",
            "name",
            "status",
            "progress",
            "source",
            "code_version",
            "notes",
            "params",
            "tags",
            "metrics",
            "owner",
            "started_at",
            "ended_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_metrics(self, run) -> dict[str, float | None]:
        summaries = self.context.get("summaries", {}).get(run.pk)
        if summaries is None:
            summaries = {s.key: s for s in run.metric_summaries.all()}
        return {key: s.last for key, s in sorted(summaries.items())}


class RunCreateSerializer(serializers.Serializer):
    experiment = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    source = serializers.ChoiceField(choices=Run.Source.choices, default=Run.Source.SCRIPT)
    status = serializers.ChoiceField(choices=[Run.Status.QUEUED, Run.Status.RUNNING], default=Run.Status.RUNNING)
    code_version = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    params = serializers.JSONField(required=False, default=dict, help_text='{"lr": 0.01, ...}')
    tags = serializers.JSONField(required=False, default=dict)


class RunUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=Run.Status.choices, required=False)
    progress = serializers.FloatField(min_value=0, max_value=1, required=False)


class MetricPointSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=250)
    value = serializers.JSONField(help_text='a number, or "NaN", "Infinity", "-Infinity"')
    step = serializers.IntegerField(min_value=0, default=0)
    timestamp = serializers.IntegerField(required=False, help_text="ms since the Unix epoch; default now")


class LogBatchSerializer(serializers.Serializer):
    """Schema only: validation lives in apps.experiments.validation (fast path for 1,000 points)."""

    metrics = MetricPointSerializer(many=True, required=False, help_text="at most 1,000 points")
    params = serializers.DictField(required=False, help_text="at most 100; write-once")
    tags = serializers.DictField(required=False, help_text="at most 100")


class LogBatchResultSerializer(serializers.Serializer):
    metrics = serializers.IntegerField()
    params = serializers.IntegerField()
    tags = serializers.IntegerField()


class SeriesSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    key = serializers.CharField()
    total = serializers.IntegerField(help_text="points stored (after after_step)")
    returned = serializers.IntegerField()
    downsampled = serializers.BooleanField()
    method = serializers.CharField(allow_null=True)
    steps = serializers.ListField(child=serializers.IntegerField())
    values = serializers.ListField(child=serializers.FloatField(allow_null=True), help_text="null means NaN")
    timestamps = serializers.ListField(child=serializers.IntegerField(), help_text="ms since epoch")


class MetricSummarySerializer(serializers.Serializer):
    key = serializers.CharField()
    last = serializers.FloatField(allow_null=True)
    last_step = serializers.IntegerField()
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()


class ArtifactSerializer(serializers.ModelSerializer):
    sha256 = serializers.SerializerMethodField(help_text="hex digest of the stored file; null for outside files")
    download_url = serializers.SerializerMethodField(help_text="null when the file lives outside the portal (uri)")

    class Meta:
        model = RunArtifact
        fields = ["path", "size", "digest", "sha256", "uri", "created_at", "download_url"]
        read_only_fields = fields

    def get_sha256(self, artifact) -> str | None:
        return artifact.blob.sha256 if artifact.blob_id else None

    def get_download_url(self, artifact) -> str | None:
        if artifact.blob_id is None:
            return None
        url = reverse("api-v1:experiments:run-artifact-download", args=[artifact.run_id, artifact.path])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


class ArtifactUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False, help_text="the file to store (encrypted)")
    path = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="where the file goes in the run's artifacts, e.g. plots/loss.png; default: the file's name",
    )


class LogAppendSerializer(serializers.Serializer):
    text = serializers.CharField(
        allow_blank=False, trim_whitespace=False, help_text="output to append (at most 64 KiB per call)"
    )
