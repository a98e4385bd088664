"""Admin console for monitoring.

Incident webhooks: platform admins browse and change them here through the services (the secret
is never shown; create one, or rotate its secret, through the API); deliveries and their attempts
are read-only, dead letters included.
"""

from __future__ import annotations

from django.contrib import admin

from apps.core.admin import ReadOnlyAdminMixin
from apps.core.permissions import is_platform_admin
from apps.monitoring.models import IncidentWebhook, WebhookAttempt, WebhookDelivery
from apps.monitoring.webhooks.services import webhook_delete, webhook_update

# --- incident webhooks (issue #16) ------------------------------------------------------------------

WEBHOOK_FIELDS = ("name", "url", "events", "min_severity", "active")  # what the admin may change


@admin.register(IncidentWebhook)
class IncidentWebhookAdmin(admin.ModelAdmin):
    list_display = ("name", "url", "min_severity", "active", "created_by", "updated_at")
    list_filter = ("active", "min_severity")
    search_fields = ("name", "url")
    fields = ("name", "url", "events", "min_severity", "active", "created_by", "created_at", "secret_rotated_at")
    readonly_fields = ("created_by", "created_at", "secret_rotated_at")
    list_select_related = ("created_by",)

    def has_module_permission(self, request):
        return is_platform_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return is_platform_admin(request.user)

    def has_change_permission(self, request, obj=None):
        return is_platform_admin(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_platform_admin(request.user)

    def has_add_permission(self, request):  # a new webhook needs its secret stored in the vault: the API
        return False

    def save_model(self, request, obj, form, change):
        """Through the service: validation and the audit entry, as everywhere else."""
        changes = {field: form.cleaned_data[field] for field in form.changed_data if field in WEBHOOK_FIELDS}
        if changes:
            webhook_update(
                webhook=IncidentWebhook.objects.get(pk=obj.pk), actor=request.user, request=request, **changes
            )

    def delete_model(self, request, obj):
        webhook_delete(webhook=obj, actor=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for webhook in queryset.select_related("secret"):
            webhook_delete(webhook=webhook, actor=request.user, request=request)


class WebhookAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempt", "status_code", "error", "state", "next_attempt_at", "duration_ms", "at")
    readonly_fields = fields
    extra = 0


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("delivery_id", "webhook", "event", "state", "attempts", "next_attempt_at", "created_at")
    list_filter = ("state", "event")
    search_fields = ("delivery_id", "webhook__name")
    fields = (
        "delivery_id", "webhook", "event", "alert", "state", "attempts", "next_attempt_at", "created_at",
        "finished_at", "body",
    )  # fmt: skip
    readonly_fields = fields
    list_select_related = ("webhook",)
    inlines = [WebhookAttemptInline]

    def has_module_permission(self, request):
        return is_platform_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return is_platform_admin(request.user)


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("delivery", "attempt", "status_code", "state", "next_attempt_at", "at")
    list_filter = ("state",)
    fields = ("delivery", "attempt", "status_code", "error", "state", "next_attempt_at", "duration_ms", "at")
    readonly_fields = fields
    list_select_related = ("delivery",)

    def has_module_permission(self, request):
        return is_platform_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return is_platform_admin(request.user)


# --- other monitoring admins follow ------------------------------------------------------------------
