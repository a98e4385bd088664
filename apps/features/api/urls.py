from django.urls import path

from apps.core.api.sharing import SharingView
from apps.features import selectors
from apps.features.api import views

urlpatterns = [
    path("entities/", views.EntityListView.as_view(), name="entity-list"),
    path("entities/<str:name>/", views.EntityDetailView.as_view(), name="entity-detail"),
    path("entities/<str:name>/sharing", SharingView.as_view(lookup=selectors.entity_for), name="entity-sharing"),
    path("feature-views/", views.FeatureViewListView.as_view(), name="view-list"),
    path("feature-views/<str:name>/", views.FeatureViewDetailView.as_view(), name="view-detail"),
    path(
        "feature-views/<str:name>/sharing",
        views.FeatureViewSharingView.as_view(lookup=selectors.feature_view_for),
        name="view-sharing",
    ),
    path("feature-views/<str:name>/ingest", views.IngestView.as_view(), name="view-ingest"),
    path("feature-views/<str:name>/push", views.PushView.as_view(), name="view-push"),
    path("feature-views/<str:name>/materialize", views.MaterializeView.as_view(), name="view-materialize"),
    path(
        "feature-views/<str:name>/materializations/<int:pk>/cancel",
        views.MaterializationCancelView.as_view(),
        name="materialization-cancel",
    ),
    path("feature-views/<str:name>/apply-retention", views.ApplyRetentionView.as_view(), name="view-apply-retention"),
    path("features/online", views.OnlineFeaturesView.as_view(), name="online"),
    path("training-sets/", views.TrainingSetListView.as_view(), name="training-set-list"),
    path("training-sets/<int:pk>/", views.TrainingSetDetailView.as_view(), name="training-set-detail"),
    path("training-sets/<int:pk>/data", views.TrainingSetDataView.as_view(), name="training-set-data"),
    path(
        "training-sets/<int:pk>/sharing",
        SharingView.as_view(lookup=selectors.training_set_for),
        name="training-set-sharing",
    ),
]
