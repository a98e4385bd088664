from django.urls import path

from apps.features.api import views

urlpatterns = [
    path("entities/", views.EntityListView.as_view(), name="entity-list"),
    path("entities/<str:name>/", views.EntityDetailView.as_view(), name="entity-detail"),
    path("feature-views/", views.FeatureViewListView.as_view(), name="view-list"),
    path("feature-views/<str:name>/", views.FeatureViewDetailView.as_view(), name="view-detail"),
    path("feature-views/<str:name>/ingest", views.IngestView.as_view(), name="view-ingest"),
    path("feature-views/<str:name>/push", views.PushView.as_view(), name="view-push"),
    path("feature-views/<str:name>/materialize", views.MaterializeView.as_view(), name="view-materialize"),
    path("feature-views/<str:name>/apply-retention", views.ApplyRetentionView.as_view(), name="view-apply-retention"),
    path("features/online", views.OnlineFeaturesView.as_view(), name="online"),
    path("training-sets/", views.TrainingSetListView.as_view(), name="training-set-list"),
    path("training-sets/<int:pk>/", views.TrainingSetDetailView.as_view(), name="training-set-detail"),
]
