from django.apps import AppConfig


class AuditGuardConfig(AppConfig):
    """Holds only the `auditlogflush` command that refuses (see its module). Listed before auditlog
    in INSTALLED_APPS (portal/settings/) so that Django picks this command over auditlog's."""

    name = "apps.core.auditguard"
    label = "core_auditguard"
    verbose_name = "Audit trail guard"
