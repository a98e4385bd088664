from django.urls import path

from apps.serving.views import canary, endpoints, scoring

urlpatterns = [
    path("endpoints/", endpoints.endpoint_list, name="endpoint-list"),
    path("endpoints/new/", endpoints.endpoint_create, name="endpoint-create"),
    path("endpoints/<str:name>/", endpoints.endpoint_detail, name="endpoint-detail"),
    path("endpoints/<str:name>/edit/", endpoints.endpoint_edit, name="endpoint-edit"),
    path("endpoints/<str:name>/share/", endpoints.endpoint_share, name="endpoint-share"),
    path("endpoints/<str:name>/unshare/", endpoints.endpoint_unshare, name="endpoint-unshare"),
    path("endpoints/<str:name>/try/", endpoints.endpoint_try, name="endpoint-try"),
    path("endpoints/<str:name>/canary/", canary.canary_page, name="canary"),
    path("endpoints/<str:name>/canary/start/", canary.canary_start, name="canary-start"),
    path("endpoints/<str:name>/canary/abort/", canary.canary_abort, name="canary-abort"),
    path("endpoints/<str:name>/ab/", canary.ab_report_page, name="ab-report"),
    path("scoring/", scoring.scoring_list, name="scoring-list"),
    path("scoring/new/", scoring.scoring_create, name="scoring-create"),
    path("scoring/<int:pk>/", scoring.scoring_detail, name="scoring-detail"),
    path("scoring/<int:pk>/cancel/", scoring.scoring_cancel, name="scoring-cancel"),
    path("scoring/<int:pk>/predictions/", scoring.scoring_download, name="scoring-download"),
]
