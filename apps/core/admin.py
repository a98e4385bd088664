from auditlog.admin import LogEntryAdmin
from django.contrib import admin

from apps.core.models import AuditEntry

admin.site.site_header = "MLOps Portal administration"
admin.site.site_title = "MLOps Portal admin"


if admin.site.is_registered(AuditEntry):  # auditlog registers its own, editable-by-superuser admin
    admin.site.unregister(AuditEntry)


class ReadOnlyAdminMixin:
    """Nobody adds, edits or deletes these rows in the admin, superusers included (records that
    the portal writes through its services: audit entries, approval decisions)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, LogEntryAdmin):
    """Read-only, like every record of what happened."""

    def get_actions(self, request):
        return {}
