from django.contrib import admin

from apps.training.models import Sweep, TrainingJob


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
