"""Admin console for serving: browse and share endpoints; their routes, prediction logs and traffic
windows are read-only here. Routes change through the endpoint pages or API, where
services/endpoints.py validates them (weights, visibility of the model, a running canary)."""

from __future__ import annotations

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from apps.core.admin import ReadOnlyAdminMixin
from apps.serving.models import Endpoint, PredictionLog, Route, TrafficWindow
from apps.serving.services.endpoints import endpoint_archive, endpoint_update


class RouteInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Route
    fields = ("position", "name", "mode", "weight", "model", "version", "alias", "updated_at")
    readonly_fields = fields
    extra = 0
    ordering = ("position", "name")


@admin.register(Endpoint)
class EndpointAdmin(GuardedModelAdmin):
    list_display = ("name", "owner", "team", "region", "log_sample_rate", "archived_at", "updated_at")
    list_filter = ("region", "archived_at")
    search_fields = ("name", "description")
    readonly_fields = ("name", "owner", "team", "region", "archived_at", "created_at", "updated_at")
    fields = (
        "name",
        "description",
        "log_sample_rate",
        "owner",
        "team",
        "region",
        "archived_at",
        "created_at",
        "updated_at",
    )
    list_select_related = ("owner", "team")
    inlines = [RouteInline]
    actions = ["archive"]

    def has_add_permission(self, request):  # an endpoint needs validated routes: create it on its page or the API
        return False

    def has_delete_permission(self, request, obj=None):  # archived, never deleted: logs and audit refer to it
        return False

    def save_model(self, request, obj, form, change):
        """Through the service: permission, validation and the audit entry, as everywhere else."""
        changes = {field: form.cleaned_data[field] for field in form.changed_data}
        if changes:
            endpoint_update(actor=request.user, endpoint=Endpoint.objects.get(pk=obj.pk), **changes)

    @admin.action(description="Archive the selected endpoints (they stop answering)")
    def archive(self, request, queryset):
        for endpoint in queryset:
            endpoint_archive(actor=request.user, endpoint=endpoint)


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "endpoint", "route", "mode", "version", "status", "latency_ms", "rows")
    list_filter = ("mode", "status")
    search_fields = ("prediction_id", "endpoint__name")
    list_select_related = ("endpoint", "version__model")
    date_hierarchy = "created_at"


@admin.register(TrafficWindow)
class TrafficWindowAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("minute", "endpoint", "route", "mode", "version", "requests", "errors", "logs_dropped")
    list_filter = ("mode",)
    search_fields = ("endpoint__name", "route")
    list_select_related = ("endpoint", "version__model")
    date_hierarchy = "minute"
