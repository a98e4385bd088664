from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"
    nav_items = [("Alerts", "monitoring:alert-list", None), ("Drift reports", "monitoring:report-list", None)]
    # Reports, profiles and alerts take their rights from what they are about (the endpoint, the
    # model, the feature view): apps/core/permissions.py. Auditors read every alert and report;
    # webhooks are platform admins' alone.
    role_permissions = {
        "auditors": ["monitoring.view_alert", "monitoring.view_driftreport"],
    }

    def ready(self) -> None:
        from apps.monitoring import signals  # noqa: F401  (canary rollbacks and failed jobs raise alerts)
