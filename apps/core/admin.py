from auditlog.admin import LogEntryAdmin
from django.contrib import admin

from apps.core.models import AuditEntry

admin.site.site_header = "MLOps Portal administration"
admin.site.site_title = "MLOps Portal admin"


if admin.site.is_registered(AuditEntry):  # auditlog registers its own, editable-by-superuser admin
    admin.site.unregister(AuditEntry)


@admin.register(AuditEntry)
class AuditEntryAdmin(LogEntryAdmin):
    """Read-only: nobody adds, edits or deletes audit entries, superusers included."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        return {}
