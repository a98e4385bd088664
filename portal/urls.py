from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_update
from django.apps import apps
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from apps.core import views as core_views
from portal.discovery import portal_app_modules

# The schema and its viewers answer signed-in users and tokens with the `read` scope only
# (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]). Under the Content Security Policy: Swagger UI's init
# script is served from /api/v1/docs/?script (the split view). ReDoc's bundle injects <style>
# elements as it loads, before any nonce option could reach it (webpack's style-loader, then
# styled-components, which stops with its error #17 without them): this one page allows inline
# styles, never inline scripts (script-src stays 'self'), and shows nothing but our own schema. Its
# search index runs in a worker made from a blob: URL, which only the page's own scripts can create.
swagger_view = SpectacularSwaggerSplitView.as_view(url_name="api-v1:schema", template_name="api/swagger_ui.html")
redoc_view = SpectacularRedocView.as_view(url_name="api-v1:schema", template_name="api/redoc.html")
api_patterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", swagger_view, name="docs"),
    path("redoc/", csp_update({"style-src": [UNSAFE_INLINE], "worker-src": [SELF, "blob:"]})(redoc_view), name="redoc"),
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
