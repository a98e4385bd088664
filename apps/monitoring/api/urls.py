from django.urls import path

from apps.monitoring.api import views, webhooks

urlpatterns = [
    path("monitoring/drift-reports/", views.ReportListView.as_view(), name="report-list"),
    path("monitoring/drift-reports/<int:pk>/", views.ReportDetailView.as_view(), name="report-detail"),
    path("monitoring/alerts/", views.AlertListView.as_view(), name="alert-list"),
    path("monitoring/alerts/<int:pk>/", views.AlertDetailView.as_view(), name="alert-detail"),
    path("monitoring/alerts/<int:pk>/acknowledge", views.AlertAcknowledgeView.as_view(), name="alert-acknowledge"),
    path("monitoring/alerts/<int:pk>/resolve", views.AlertResolveView.as_view(), name="alert-resolve"),
    path("models/<str:name>/versions/<str:version>/profile", views.ProfileView.as_view(), name="version-profile"),
    path("endpoints/<str:name>/monitoring", views.EndpointMonitoringView.as_view(), name="endpoint-monitoring"),
    path("monitoring/webhooks/", webhooks.WebhookListView.as_view(), name="webhook-list"),
    path("monitoring/webhooks/<int:pk>/", webhooks.WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        "monitoring/webhooks/<int:pk>/deliveries/",
        webhooks.WebhookDeliveryListView.as_view(),
        name="webhook-deliveries",
    ),
]
