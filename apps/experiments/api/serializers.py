"""Input and output serializers of the experiments API; inputs are read with `validated`."""

from __future__ import annotations

from urllib.parse import quote

from django.core.validators import ProhibitNullCharactersValidator
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from apps.experiments.downsample import METHODS
from apps.experiments.models import Experiment, Run, RunArtifact
from apps.experiments.validation import MAX_STEP

MAX_LOG_APPEND_BYTES = 64 * 1024  # of text per call (UTF-8)
MAX_SERIES_MAX_POINTS = 100_000
MAX_ID = 2**63 - 1  # the database's bigint: a larger number is a 400, never an OverflowError
PATH_SAFE = "/~:@!$&'()*+,;="  # what Django's reverse() leaves unquoted in a <path:> argument


class PassThroughField(serializers.Field):
    """Taken as sent: apps.experiments.validation checks it (1,000 points per call, fast path)."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class TextField(serializers.CharField):
    """A JSON string, and only a string (DRF's CharField would turn 5 into "5"). NUL characters
    are let through: the log service drops them (a worker's output may hold them). Lone
    surrogates never get here over HTTP (the API's JSON parser refuses them); the service
    replaces them for callers that pass text directly."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            v
            for v in self.validators
            if not isinstance(v, ProhibitNullCharactersValidator | ProhibitSurrogateCharactersValidator)
        ]

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ExperimentSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    run_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Experiment
        fields = [
            "id", "name", "description", "tags", "owner", "team", "region", "run_count", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "owner", "team", "region", "run_count", "created_at", "updated_at"]


class ExperimentFiltersSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="exact experiment name")


class ExperimentCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)
    team = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, default=None,
        help_text="slug of one of your teams: its members may view the experiment",
    )  # fmt: skip
    region = serializers.CharField(
        required=False, allow_blank=True, default="default", max_length=41,
        help_text='residency region its runs and artifacts are pinned to ("default" = unpinned); one of PORTAL_REGIONS',
    )  # fmt: skip


class ExperimentUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    tags = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)


class ModelVersionRefSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.IntegerField()


class RunSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    metrics = serializers.SerializerMethodField(help_text="latest value per metric key")
    stale = serializers.BooleanField(
        read_only=True,
        help_text="running, but its client has been silent past EXPERIMENTS_STALE_AFTER_S: not counted as training",
    )
    model_version = serializers.SerializerMethodField(help_text="the model version registered from this run, if any")

    class Meta:
        model = Run
        fields = [
            "id",
            "experiment",
            "name",
            "status",
            "stale",
            "progress",
            "source",
            "code_version",
            "notes",
            "region",
            "params",
            "tags",
            "metrics",
            "model_version",
            "owner",
            "last_seen_at",
            "started_at",
            "ended_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_metrics(self, run) -> dict[str, float | None]:
        """From `context["summaries"]` ({run_id: {key: summary}}, `selectors.summaries_of`): no query per row."""
        summaries = self.context["summaries"].get(run.pk, {})
        return {key: s.last for key, s in sorted(summaries.items())}

    @extend_schema_field(ModelVersionRefSerializer(allow_null=True))
    def get_model_version(self, run) -> dict | None:
        """From `context["model_versions"]` (`selectors.run_model_versions_visible`): no query per row."""
        version = self.context.get("model_versions", {}).get(run.pk)
        return None if version is None else {"model": version.model.name, "version": version.version}


class RunFiltersSerializer(serializers.Serializer):
    experiment = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="experiment id")
    status = serializers.ChoiceField(choices=Run.Status.choices, required=False, allow_blank=True)
    stale = serializers.BooleanField(
        required=False, allow_null=True, default=None,
        help_text="true: only runs whose client went silent; false: none of them (status=running&stale=false: training now)",
    )  # fmt: skip
    filter = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="e.g. metrics.val_acc > 0.9 and params.lr < 0.01"
    )
    order_by = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=300,
        help_text="e.g. -metrics.val_acc, params.lr, name, -created_at",
    )


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


class LogBatchInputSerializer(serializers.Serializer):
    """What `validated` reads: the three names, as sent; their content is the service's to check."""

    metrics = PassThroughField(required=False)
    params = PassThroughField(required=False)
    tags = PassThroughField(required=False)


class LogBatchResultSerializer(serializers.Serializer):
    metrics = serializers.IntegerField()
    params = serializers.IntegerField()
    tags = serializers.IntegerField()


class SeriesQuerySerializer(serializers.Serializer):
    max_points = serializers.IntegerField(
        required=False, min_value=4, max_value=MAX_SERIES_MAX_POINTS, help_text="downsample to at most this many points"
    )
    method = serializers.ChoiceField(choices=list(METHODS), default="minmax", help_text="minmax (default) or lttb")
    after_step = serializers.IntegerField(
        required=False, min_value=-1, max_value=MAX_STEP, help_text="only points after this step (catch-up)"
    )


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
        url = f"{self._list_url(artifact.run_id)}/{quote(artifact.path, safe=PATH_SAFE)}"
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    def _list_url(self, run_id: int) -> str:
        """`/api/v1/runs/<id>/artifacts`, reversed once per run rather than once per row."""
        urls = self.context.setdefault("artifact_list_urls", {})
        if run_id not in urls:
            urls[run_id] = reverse("api-v1:experiments:run-artifact-list", args=[run_id])
        return urls[run_id]


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
    text = TextField(allow_blank=False, trim_whitespace=False, help_text="output to append (at most 64 KiB per call)")

    def validate_text(self, text: str) -> str:
        if len(text.encode("utf-8", "surrogatepass")) > MAX_LOG_APPEND_BYTES:
            raise serializers.ValidationError(
                f"text may be at most {MAX_LOG_APPEND_BYTES // 1024} KiB per call; split it."
            )
        return text


class LogTailSerializer(serializers.Serializer):
    run = serializers.IntegerField(source="pk")
    text = serializers.CharField(source="log_tail", help_text="the last 64 KiB of the run's output")
