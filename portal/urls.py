from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.core import views as core_views
from portal.discovery import portal_app_modules

api_patterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-v1:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-v1:schema"), name="redoc"),
]
browser_patterns = []
for label, module in portal_app_modules("api.urls"):
    api_patterns.append(path("", include((module.urlpatterns, label), namespace=label)))
for label, module in portal_app_modules("urls"):
    browser_patterns.append(path("", include((module.urlpatterns, label), namespace=label)))

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_patterns, "api-v1"), namespace="api-v1")),
    *browser_patterns,
]
if apps.is_installed("apps.monitoring"):  # PORTAL_DISABLED_APPS may leave it out
    from apps.monitoring.metrics import metrics_view

    urlpatterns.insert(1, path("metrics", metrics_view, name="metrics"))  # Prometheus, beside /healthz
handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.forbidden"
handler404 = "apps.core.views.not_found"
handler500 = "apps.core.views.server_error"
