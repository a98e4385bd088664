from django.urls import path

from apps.core.api.sharing import SharingView
from apps.serving import selectors
from apps.serving.api import canary, endpoints, feedback, predict, scoring

E = "endpoints/<str:name>"
urlpatterns = [
    path("endpoints/", endpoints.EndpointListView.as_view(), name="endpoint-list"),
    path(f"{E}/", endpoints.EndpointDetailView.as_view(), name="endpoint-detail"),
    path(f"{E}/sharing", SharingView.as_view(lookup=selectors.endpoint_for), name="endpoint-sharing"),
    path(f"{E}/predict", predict.PredictView.as_view(), name="endpoint-predict"),
    path(f"{E}/traffic", endpoints.TrafficView.as_view(), name="endpoint-traffic"),
    path(f"{E}/feedback", feedback.FeedbackView.as_view(), name="endpoint-feedback"),
    path(f"{E}/ab-report", feedback.AbReportView.as_view(), name="endpoint-ab-report"),
    path(f"{E}/canary", canary.CanaryView.as_view(), name="endpoint-canary"),
    path(f"{E}/canary/abort", canary.CanaryAbortView.as_view(), name="endpoint-canary-abort"),
    path("scoring/jobs/", scoring.ScoringJobListView.as_view(), name="scoring-list"),
    path("scoring/jobs/<int:pk>/", scoring.ScoringJobDetailView.as_view(), name="scoring-detail"),
    path("scoring/jobs/<int:pk>/cancel", scoring.ScoringJobCancelView.as_view(), name="scoring-cancel"),
    path("scoring/jobs/<int:pk>/predictions", scoring.PredictionsDownloadView.as_view(), name="scoring-predictions"),
]
