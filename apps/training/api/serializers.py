"""API input, filter and output serializers for training (shapes only: values are the services' to check)."""

from __future__ import annotations

from rest_framework import serializers

from apps.training.models import ScriptVersion, Sweep, TrainingJob, TrainingScript
from apps.training.services import gpu_hint

TEAM_HELP = "slug of a team you belong to: shares the {what} with the team as viewers"


class JobFiltersSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=TrainingJob.State.values, required=False)
    template = serializers.CharField(required=False, allow_blank=True, max_length=100)
    sweep = serializers.IntegerField(required=False, min_value=1, help_text="sweep id")


class JobLaunchSerializer(serializers.Serializer):
    """Shape only; values are validated by `services.job_launch` against the template's schema."""

    template = serializers.CharField(required=False, allow_blank=True, default="", help_text="a template, or:")
    script = serializers.CharField(
        required=False, allow_blank=True, default=None, max_length=100, help_text="a training script's name"
    )
    script_version = serializers.IntegerField(required=False, default=None, help_text="default: the latest")
    max_memory_mb = serializers.IntegerField(
        required=False, default=None, help_text="script jobs: memory limit of the whole process group"
    )
    params = serializers.JSONField(required=False, default=dict)
    data = serializers.JSONField(required=False, default=dict, help_text='{"dataset": "wine"} or '
                                 '{"training_set": 12, "label": "churned", "features": [...]}; scripts: '
                                 '{"training_set": 12} or {"artifact": "model:version"}')  # fmt: skip
    resource_class = serializers.CharField(required=False, default="cpu")
    region = serializers.CharField(required=False, allow_blank=True, default="")
    priority = serializers.IntegerField(required=False, default=None, help_text="0 (low) to 9 (high), default 5")
    max_runtime_s = serializers.IntegerField(required=False, default=None, help_text="seconds, default 3600")
    seed = serializers.IntegerField(required=False, default=None)
    allow_cpu_fallback = serializers.BooleanField(required=False, default=False)
    experiment = serializers.IntegerField(required=False, default=None, help_text="experiment id (default: yours)")
    experiment_name = serializers.CharField(
        required=False, allow_blank=True, default=None, max_length=100,
        help_text="an experiment by name instead of id: one you can add runs to, or a new one",
    )  # fmt: skip
    run_name = serializers.CharField(
        required=False, allow_blank=True, default=None, max_length=200, help_text="default: job-<id>"
    )
    max_queue_s = serializers.IntegerField(
        required=False, default=None, help_text="fail the job if no worker takes it within this many seconds "
        "(60 to 604800); default: it waits",
    )  # fmt: skip
    model_name = serializers.CharField(required=False, allow_blank=True, default="")
    team = serializers.CharField(
        required=False, allow_blank=True, default=None, max_length=50,
        help_text=TEAM_HELP.format(what="job, its run and the registered model"),
    )  # fmt: skip


def _team_slug(obj) -> str | None:
    return obj.team.slug if obj.team_id else None


class JobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.SerializerMethodField()
    model_version = serializers.SerializerMethodField()
    cost = serializers.FloatField(read_only=True)
    gpu_hint = serializers.SerializerMethodField()
    script = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id", "owner", "team", "template", "params", "data", "resource_class", "region", "queue", "priority",
            "max_runtime_s", "max_queue_s", "seed", "allow_cpu_fallback", "device", "warning", "state", "cancel_requested",
            "worker", "attempts", "progress", "eta_s", "epochs_completed", "error", "experiment", "run",
            "checkpoint_epoch", "checkpoint_step", "model_name", "model_version", "metrics", "wall_s", "cpu_s",
            "peak_mem_mb", "gpu_s", "peak_gpu_mem_mb", "cost", "gpu_hint", "sweep", "trial_number", "queued_at",
            "started_at", "finished_at", "script", "max_memory_mb",
        ]  # fmt: skip
        read_only_fields = fields

    def get_team(self, obj) -> str | None:
        return _team_slug(obj)

    def get_script(self, job) -> dict | None:
        v = job.script_version
        return None if v is None else {"name": v.script.name, "version": v.version, "digest": v.digest}

    def get_model_version(self, job) -> dict | None:
        v = job.model_version
        return None if v is None else {"model": v.model.name, "version": v.version}

    def get_gpu_hint(self, job) -> str:
        return gpu_hint(job)


class JobDetailSerializer(JobSerializer):
    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "result"]
        read_only_fields = fields


class SweepCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    template = serializers.CharField()
    method = serializers.CharField(help_text="grid, random or tpe")
    space = serializers.JSONField(help_text='{"lr": {"min": 1e-4, "max": 1e-1, "log": true}, '
                                  '"hidden_units": {"values": [32, 64]}}')  # fmt: skip
    params = serializers.JSONField(required=False, default=dict, help_text="fixed params for every trial")
    metric = serializers.CharField(required=False, default="")
    mode = serializers.CharField(required=False, default="")
    max_trials = serializers.IntegerField(required=False, default=None)
    parallelism = serializers.IntegerField(required=False, default=None)
    seed = serializers.IntegerField(required=False, default=None)
    data = serializers.JSONField(required=False, default=dict)
    resource_class = serializers.CharField(required=False, default="cpu")
    region = serializers.CharField(required=False, allow_blank=True, default="")
    max_runtime_s = serializers.IntegerField(required=False, default=None)
    experiment = serializers.IntegerField(required=False, default=None)
    team = serializers.CharField(
        required=False, allow_blank=True, default=None, max_length=50,
        help_text=TEAM_HELP.format(what="sweep, its trials and their models"),
    )  # fmt: skip


class SweepSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.SerializerMethodField()
    best = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = [
            "id", "name", "owner", "team", "template", "method", "space", "base_params", "metric", "mode", "max_trials",
            "parallelism", "seed", "state", "experiment", "best_job", "best", "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_team(self, obj) -> str | None:
        return _team_slug(obj)

    def get_best(self, sweep) -> dict | None:
        job = sweep.best_job
        if job is None:
            return None
        return {"job": job.pk, "trial": job.trial_number, "params": job.params, "value": job.metrics.get(sweep.metric)}


class ScriptRegisterSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    file = serializers.FileField(help_text="a .py file, or a folder as a .zip or .tar.gz")
    entry_point = serializers.CharField(required=False, allow_blank=True, default=None, max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    team = serializers.CharField(
        required=False, allow_blank=True, default=None, max_length=50, help_text=TEAM_HELP.format(what="script")
    )


class ScriptVersionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a .py file, or a folder as a .zip or .tar.gz")
    entry_point = serializers.CharField(
        required=False, allow_blank=True, default=None, max_length=255, help_text="default: the script's"
    )


class ScriptUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, default=None, max_length=5000)


class ScriptVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = ScriptVersion
        fields = ["version", "digest", "size", "kind", "filename", "entry_point", "created_by", "created_at"]
        read_only_fields = fields


class ScriptSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    team = serializers.SerializerMethodField()

    class Meta:
        model = TrainingScript
        fields = ["name", "description", "entry_point", "latest_version", "owner", "team", "created_at", "updated_at"]
        read_only_fields = fields

    def get_team(self, obj) -> str | None:
        return _team_slug(obj)
