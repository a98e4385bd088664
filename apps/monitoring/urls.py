from django.urls import path

from apps.monitoring.views import alerts, endpoints, profiles, reports

urlpatterns = [
    path("monitoring/alerts/", alerts.alert_list, name="alert-list"),
    path("monitoring/alerts/<int:pk>/", alerts.alert_detail, name="alert-detail"),
    path("monitoring/alerts/<int:pk>/acknowledge/", alerts.alert_acknowledge_page, name="alert-acknowledge"),
    path("monitoring/alerts/<int:pk>/resolve/", alerts.alert_resolve_page, name="alert-resolve"),
    path("monitoring/alerts/<int:pk>/assign/", alerts.alert_assign_page, name="alert-assign"),
    path("monitoring/reports/", reports.report_list, name="report-list"),
    path("monitoring/reports/<int:pk>/", reports.report_detail, name="report-detail"),
    path("endpoints/<str:name>/monitoring/", endpoints.endpoint_monitoring, name="endpoint-monitoring"),
    path(
        "endpoints/<str:name>/monitoring/check/", endpoints.endpoint_monitoring_check, name="endpoint-monitoring-check"
    ),
    path(
        "endpoints/<str:name>/monitoring/settings/",
        endpoints.endpoint_monitoring_settings,
        name="endpoint-monitoring-settings",
    ),  # fmt: skip
    path("models/<str:name>/versions/<int:version>/profile/", profiles.version_profile, name="version-profile"),
    path(
        "models/<str:name>/versions/<int:version>/profile/build/",
        profiles.version_profile_build,
        name="version-profile-build",
    ),  # fmt: skip
]
