"""Experiments, runs and their metric series.

Object permissions live on the experiment: a run is visible to whoever may view its experiment
and writable by whoever may change it (10,000 runs need no 30,000 guardian rows).

Metric points sit in a lean table written in bulk (no per-row signals, no audit entry per point);
`RunMetricSummary` keeps the latest/min/max per run and key so that the runs table sorts and
filters by a metric with one indexed join. `RunParam` and `RunTag` mirror the run's params and
tags as rows for the same reason; the JSON columns on the run are what pages display.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.core.models import OwnedModel, VaultBlob
from apps.core.permission_tables import object_permission_models

slug_validator = RegexValidator(
    r"^[a-z0-9]+(?:-[a-z0-9]+)*$", "Use lowercase letters, digits and single hyphens, e.g. churn-model."
)


class Experiment(OwnedModel):
    name = models.SlugField(max_length=100, unique=True, validators=[slug_validator])
    description = models.TextField(blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    # Residency (issue 17): its runs and their artifacts stay in this region ("default" = unpinned).
    region = models.CharField(max_length=41, default="default", db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


ExperimentUserObjectPermission, ExperimentGroupObjectPermission = object_permission_models(Experiment)


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"
        KILLED = "killed", "Killed"

    class Source(models.TextChoices):
        JOB = "job", "Training job"
        SCRIPT = "script", "Outside script"

    TERMINAL = (Status.FINISHED, Status.FAILED, Status.KILLED)

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    progress = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.SCRIPT)
    code_version = models.CharField(max_length=200, blank=True, default="")
    notes = models.TextField(blank=True, default="")
    # The experiment's region, or the region of the pinned training data of the job that made it;
    # its artifacts inherit it (apps/core/residency.py).
    region = models.CharField(max_length=41, default="default")
    params = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True, default="")
    # Last sign of life from the client (a log batch, a log line, a progress or status report).
    # A running run silent for EXPERIMENTS_STALE_AFTER_S is flagged `stale` by the
    # experiments.mark_stale_runs task: still "running" (the client may come back, which clears
    # the flag), but shown apart and never counted as training.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    stale = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["experiment", "-created_at"], name="exp_run_created_idx"),
            # index-only scans for the runs table's id queries and counts (10,000 runs per experiment)
            models.Index(fields=["experiment", "id"], name="exp_run_id_idx"),
            models.Index(fields=["experiment", "status"], name="exp_run_status_idx"),
            models.Index(fields=["status"], name="run_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.name}/{self.name}" if "experiment" in self.__dict__ else self.name

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL

    @property
    def is_training(self) -> bool:
        """Running and heard from recently: what dashboards count as "training now"."""
        return self.status == self.Status.RUNNING and not self.stale


class MetricPoint(models.Model):
    """One logged value. `value` NULL means NaN; +/-inf are stored as +/- the largest float."""

    id = models.BigAutoField(primary_key=True)
    # No database FK constraint: it would fire a trigger per inserted point. Points are only ever
    # written by run_log_batch for a run it has just loaded, and runs are deleted through the ORM,
    # which deletes their points first (on_delete=CASCADE).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False)
    key = models.CharField(max_length=250)
    step = models.BigIntegerField()
    value = models.FloatField(null=True)
    timestamp = models.BigIntegerField(help_text="milliseconds since the Unix epoch")

    # The series index (run_id, key, step) is created by migration 0002: on PostgreSQL it also
    # INCLUDEs value and timestamp, so reading a 100,000-point series is an index-only scan.


class RunMetricSummary(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metric_summaries")
    key = models.CharField(max_length=250)
    last = models.FloatField(null=True)
    last_step = models.BigIntegerField()
    last_timestamp = models.BigIntegerField()
    min = models.FloatField(null=True)
    max = models.FloatField(null=True)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="metric_summary_run_key_uniq")]
        indexes = [models.Index(fields=["key", "last"], name="metric_summary_key_last_idx")]


class RunParam(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="param_rows")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=6000)
    value_num = models.FloatField(null=True, help_text="the value as a number when it is one (for < and >)")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_param_run_key_uniq")]
        indexes = [
            models.Index(fields=["key", "value_num"], name="run_param_key_num_idx"),
        ]


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tag_rows")
    key = models.CharField(max_length=250)
    value = models.CharField(max_length=5000)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_tag_run_key_uniq")]


class RunArtifact(models.Model):
    """A file a run produced (checkpoint, ONNX export, plot), listed on the run page.

    Uploaded files live encrypted in the vault (`blob`); `uri` names a file kept elsewhere.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    path = models.CharField(max_length=500)
    size = models.BigIntegerField(default=0)
    digest = models.CharField(max_length=80, blank=True, default="")
    uri = models.CharField(max_length=1000, blank=True, default="")
    blob = models.ForeignKey(VaultBlob, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["path"]
        constraints = [models.UniqueConstraint(fields=["run", "path"], name="run_artifact_run_path_uniq")]

    def __str__(self) -> str:
        return self.path


@receiver(post_delete, sender=RunArtifact, dispatch_uid="experiments.run_artifact_blob")
def _delete_artifact_blob(sender, instance: RunArtifact, **kwargs) -> None:
    """A vault blob belongs to exactly one artifact row: when the row goes (replaced, or its run or
    experiment deleted), the blob row goes in the same transaction and its ciphertext after commit."""
    if instance.blob_id is None:
        return
    from apps.core import vault

    blob = VaultBlob.objects.filter(pk=instance.blob_id).first()
    if blob is not None:
        vault.blob_delete(blob)


class ExperimentKey(models.Model):
    """The metric and param names used in an experiment (for column pickers), kept as runs log
    them so that a page never scans 10,000 runs' rows to list them."""

    class Kind(models.TextChoices):
        METRIC = "metric", "Metric"
        PARAM = "param", "Param"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="keys")
    kind = models.CharField(max_length=6, choices=Kind.choices)
    key = models.CharField(max_length=250)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "kind", "key"], name="experiment_key_uniq")]


class RunsTableColumns(models.Model):
    """The metric and param columns one user chose for one experiment's runs table, so the
    table opens on them next time (on any browser)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    metrics = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "experiment"], name="runs_table_columns_user_experiment_uniq")
        ]
