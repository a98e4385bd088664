"""API input, filter and output serializers of batch scoring (shapes only: values are the
services' to check)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from apps.serving.models import ScoringJob
from apps.serving.scoring.downloads import FORMATS
from apps.serving.scoring.states import eta_s


class ScoringJobFiltersSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=ScoringJob.State.values, required=False)


class ScoringJobCreateSerializer(serializers.Serializer):
    """Multipart with `file`, or JSON with `training_set`."""

    model = serializers.CharField(max_length=100, help_text="the registered model's name")
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    file = serializers.FileField(required=False, help_text="Parquet or CSV rows to score")
    training_set = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="training set id"
    )
    resource_class = serializers.ChoiceField(choices=ScoringJob.ResourceClass.values, required=False, default="cpu")
    region = serializers.CharField(required=False, allow_blank=True, default="", max_length=41)
    exclude = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=1000,
        help_text="id or label columns that are not model inputs (when the version names no columns)",
    )  # fmt: skip
    keep = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list, max_length=1000,
        help_text="input columns copied into the predictions as keys (default: a row index)",
    )  # fmt: skip


class PredictionsQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(FORMATS), required=False, default="parquet")


class ScoringJobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    model = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    training_set = serializers.IntegerField(source="training_set_id", read_only=True, allow_null=True)
    upload = serializers.SerializerMethodField()
    rows = serializers.IntegerField(source="rows_done", read_only=True)
    eta_s = serializers.SerializerMethodField()
    predictions = serializers.SerializerMethodField()

    class Meta:
        model = ScoringJob
        fields = [
            "id", "owner", "model", "version", "upload", "training_set", "resource_class", "region", "queue",
            "state", "progress", "eta_s", "rows", "rows_total", "cancel_requested", "attempts", "digest",
            "lineage", "error", "warning", "predictions", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_upload(self, job: ScoringJob) -> str | None:
        return job.source.get("upload")

    def get_eta_s(self, job: ScoringJob) -> float | None:
        return eta_s(job)

    def get_predictions(self, job: ScoringJob) -> str | None:
        """The download's path once the job has succeeded (`?format=csv` for CSV)."""
        if job.state != ScoringJob.State.SUCCEEDED:
            return None
        return reverse("api-v1:serving:scoring-predictions", args=[job.pk])
