from django.urls import path

from apps.features import views

urlpatterns = [
    path("features/", views.view_list, name="view-list"),
    path("features/new/", views.view_create, name="view-create"),
    path("features/entities/", views.entity_list, name="entity-list"),
    path("features/entities/new/", views.entity_create, name="entity-create"),
    path("features/entities/<str:name>/", views.entity_detail, name="entity-detail"),
    path("features/entities/<str:name>/share/", views.entity_share, name="entity-share"),
    path("features/entities/<str:name>/unshare/", views.entity_unshare, name="entity-unshare"),
    path("features/lookup/", views.lookup, name="lookup"),
    path("features/training-sets/", views.training_set_list, name="training-set-list"),
    path("features/training-sets/<int:pk>/", views.training_set_detail, name="training-set-detail"),
    path("features/training-sets/<int:pk>/share/", views.training_set_share, name="training-set-share"),
    path("features/training-sets/<int:pk>/unshare/", views.training_set_unshare, name="training-set-unshare"),
    path("features/<str:name>/", views.view_detail, name="view-detail"),
    path("features/<str:name>/ingest/", views.view_ingest, name="view-ingest"),
    path("features/<str:name>/materialize/", views.view_materialize, name="view-materialize"),
    path(
        "features/<str:name>/materializations/<int:pk>/cancel/",
        views.materialization_cancel,
        name="materialization-cancel",
    ),
    path("features/<str:name>/retention/", views.view_retention, name="view-retention"),
    path("features/<str:name>/retention/apply/", views.view_apply_retention, name="view-apply-retention"),
    path("features/<str:name>/share/", views.view_share, name="view-share"),
    path("features/<str:name>/unshare/", views.view_unshare, name="view-unshare"),
]
