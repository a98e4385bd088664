"""Training jobs (a Celery task mirrored in a row with a state machine), sweeps of jobs, and users'
own training scripts (versioned, stored in the vault) that script jobs run."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.models import OwnedModel
from apps.core.permission_tables import object_permission_models


class Sweep(OwnedModel):
    class Method(models.TextChoices):
        GRID = "grid", "Grid search"
        RANDOM = "random", "Random search"
        TPE = "tpe", "Optuna TPE + median pruner"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    TERMINAL = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    name = models.CharField(max_length=100)
    template = models.CharField(max_length=100)
    method = models.CharField(max_length=10, choices=Method.choices)
    space = models.JSONField(help_text="{param: {type, values | min, max, log}}")
    base_params = models.JSONField(default=dict, blank=True)
    launch = models.JSONField(default=dict, help_text="data, resource_class, region, max_runtime_s, ... per child")
    metric = models.CharField(max_length=40)
    mode = models.CharField(max_length=3, choices=[("min", "min"), ("max", "max")])
    max_trials = models.PositiveIntegerField()
    parallelism = models.PositiveIntegerField(default=2)
    seed = models.BigIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    experiment = models.ForeignKey("experiments.Experiment", on_delete=models.PROTECT, related_name="+")
    best_job = models.ForeignKey("TrainingJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class TrainingScript(OwnedModel):
    """A user's own training code: a `.py` file or a folder (archive), run by script jobs."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    entry_point = models.CharField(max_length=255, help_text="the file to run, relative to the unpacked folder")
    latest_version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "training script"
        # Granted per team (its group holds it), by platform admins: apps/training/scripts/services.py.
        permissions = [("launch_trainingscript", "Launch training scripts on the queues")]

    def __str__(self) -> str:
        return self.name


class ScriptVersion(models.Model):
    """One immutable upload of a script: the file or archive in the vault, with its digest."""

    script = models.ForeignKey(TrainingScript, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    blob = models.ForeignKey("core.VaultBlob", on_delete=models.PROTECT, related_name="+")
    filename = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, help_text="py, zip or tar.gz")
    entry_point = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["script", "-version"]
        constraints = [models.UniqueConstraint(fields=["script", "version"], name="training_script_version_unique")]
        verbose_name = "script version"

    def __str__(self) -> str:
        return f"{self.script.name}:{self.version}"

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"


class TrainingJob(OwnedModel):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class ResourceClass(models.TextChoices):
        CPU = "cpu", "CPU"
        GPU = "gpu", "GPU"

    TERMINAL = (State.SUCCEEDED, State.FAILED, State.CANCELLED)
    ACTIVE = (State.QUEUED, State.RUNNING, State.RETRYING)

    template = models.CharField(max_length=100, help_text="the template, or script:<name> for a script job")
    script_version = models.ForeignKey(
        ScriptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    max_memory_mb = models.PositiveIntegerField(null=True, blank=True, help_text="script jobs: memory limit")
    api_token = models.ForeignKey(
        "accounts.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="the job-scoped token a script job runs with (revoked when it ends)",
    )  # fmt: skip
    params = models.JSONField(default=dict)
    data = models.JSONField(default=dict, help_text='{"dataset": name} or {"training_set": id, "label": col, ...}')
    training_set = models.ForeignKey(
        "features.TrainingSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resource_class = models.CharField(max_length=3, choices=ResourceClass.choices, default=ResourceClass.CPU)
    region = models.CharField(max_length=41, default="default")
    queue = models.CharField(max_length=60)
    priority = models.PositiveSmallIntegerField(default=5)
    max_runtime_s = models.PositiveIntegerField(default=3600)
    max_queue_s = models.PositiveIntegerField(
        null=True, blank=True, help_text="fail the job if no worker takes it within this many seconds"
    )
    seed = models.BigIntegerField(default=0)
    allow_cpu_fallback = models.BooleanField(default=False)
    device = models.CharField(max_length=20, blank=True, default="")
    warning = models.CharField(max_length=500, blank=True, default="")

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    celery_task_id = models.CharField(max_length=64, blank=True, default="")
    worker = models.CharField(max_length=200, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    eta_s = models.FloatField(null=True, blank=True)
    epochs_completed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    experiment = models.ForeignKey("experiments.Experiment", on_delete=models.PROTECT, related_name="+")
    run = models.OneToOneField("experiments.Run", null=True, on_delete=models.SET_NULL, related_name="training_job")
    checkpoint = models.ForeignKey("core.VaultBlob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    checkpoint_epoch = models.PositiveIntegerField(default=0)
    checkpoint_step = models.PositiveBigIntegerField(default=0)
    model_name = models.CharField(max_length=100)
    model_version = models.ForeignKey(
        "catalog.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    metrics = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="export/parity summary, dataset, versions")

    wall_s = models.FloatField(default=0.0)
    cpu_s = models.FloatField(default=0.0)
    peak_mem_mb = models.FloatField(null=True, blank=True)
    gpu_s = models.FloatField(default=0.0)
    peak_gpu_mem_mb = models.FloatField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=4, default=0)

    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    trial_number = models.PositiveIntegerField(null=True, blank=True)

    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "queue"], name="training_job_state_queue_idx"),
            models.Index(fields=["sweep", "trial_number"], name="training_job_sweep_trial_idx"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.template})"

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL


TrainingJobUserObjectPermission, TrainingJobGroupObjectPermission = object_permission_models(TrainingJob)
SweepUserObjectPermission, SweepGroupObjectPermission = object_permission_models(Sweep)
TrainingScriptUserObjectPermission, TrainingScriptGroupObjectPermission = object_permission_models(TrainingScript)
