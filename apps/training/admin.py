from django.contrib import admin

from apps.training.models import Sweep, TrainingJob, TrainingScript


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "template", "state", "queue", "owner", "progress", "attempts", "cost", "queued_at")
    list_filter = ("state", "queue", "template")
    readonly_fields = [f.name for f in TrainingJob._meta.fields]


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "template", "method", "state", "owner", "max_trials", "parallelism")
    list_filter = ("state", "method")
    readonly_fields = [f.name for f in Sweep._meta.fields]


@admin.register(TrainingScript)
class TrainingScriptAdmin(admin.ModelAdmin):
    """Read-only: scripts change through their services (vault, digest, audit); the script-launch
    grant is `manage.py script_launch_grant` (audited)."""

    list_display = ("id", "name", "entry_point", "latest_version", "owner", "team", "updated_at")
    readonly_fields = [f.name for f in TrainingScript._meta.fields]
