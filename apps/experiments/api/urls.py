from django.urls import path, register_converter

from apps.core.api.sharing import SharingView
from apps.experiments import selectors
from apps.experiments.api import views


class SubPathConverter:
    """A metric key or artifact path: like `<path:>` but never ending in "/" (neither can be
    valid), so `.../metrics/loss/` is no route and a 404 for `.../metrics/loss` stays a 404
    instead of a trailing-slash redirect (which would tell a stranger the run exists)."""

    regex = r".*[^/]"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(SubPathConverter, "subpath")

urlpatterns = [
    path("experiments/", views.ExperimentListView.as_view(), name="experiment-list"),
    path("experiments/<int:pk>/", views.ExperimentDetailView.as_view(), name="experiment-detail"),
    path(
        "experiments/<int:pk>/sharing",
        SharingView.as_view(lookup=selectors.experiment_for),
        name="experiment-sharing",
    ),
    path("runs/", views.RunListView.as_view(), name="run-list"),
    path("runs/<int:pk>/", views.RunDetailView.as_view(), name="run-detail"),
    path("runs/<int:pk>/sharing", views.RunSharingView.as_view(), name="run-sharing"),
    path("runs/<int:pk>/log-batch", views.RunLogBatchView.as_view(), name="run-log-batch"),
    path("runs/<int:pk>/log", views.RunLogAppendView.as_view(), name="run-log-append"),
    path("runs/<int:pk>/artifacts", views.RunArtifactListView.as_view(), name="run-artifact-list"),
    path(
        "runs/<int:pk>/artifacts/<subpath:path>", views.RunArtifactDownloadView.as_view(), name="run-artifact-download"
    ),
    path("runs/<int:pk>/metrics/", views.RunMetricKeysView.as_view(), name="run-metric-keys"),
    path("runs/<int:pk>/metrics/<subpath:key>", views.RunMetricSeriesView.as_view(), name="run-metric-series"),
]
