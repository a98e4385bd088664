from django.urls import path

from apps.catalog import views

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/new/", views.model_create, name="model-create"),
    path("models/<str:name>/", views.model_detail, name="model-detail"),
    path("models/<str:name>/edit/", views.model_edit, name="model-edit"),
    path("models/<str:name>/card/", views.card_edit, name="card-edit"),
    path("models/<str:name>/share/", views.model_share, name="model-share"),
    path("models/<str:name>/unshare/", views.model_unshare, name="model-unshare"),
    path("models/<str:name>/archive/", views.model_archive, name="model-archive"),
    path("models/<str:name>/upload/", views.version_upload, name="version-upload"),
    path("models/<str:name>/aliases/", views.alias_set, name="alias-set"),
    path("models/<str:name>/versions/<int:version>/", views.version_detail, name="version-detail"),
    path("models/<str:name>/versions/<int:version>/download/", views.version_download, name="version-download"),
]
