from django.urls import path

from apps.catalog import selectors
from apps.catalog.api import views
from apps.core.api.sharing import SharingView

V = "models/<str:name>/versions/<str:version>"
urlpatterns = [
    path("models/", views.ModelListView.as_view(), name="model-list"),
    path("models/<str:name>/", views.ModelDetailView.as_view(), name="model-detail"),
    path("models/<str:name>/card", views.ModelCardView.as_view(), name="model-card"),
    path("models/<str:name>/sharing", SharingView.as_view(lookup=selectors.model_for), name="model-sharing"),
    path("models/<str:name>/versions/", views.VersionListView.as_view(), name="version-list"),
    path(f"{V}/", views.VersionDetailView.as_view(), name="version-detail"),
    path(f"{V}/artifact", views.ArtifactDownloadView.as_view(), name="version-artifact"),
    path(f"{V}/state-dict", views.StateDictDownloadView.as_view(), name="version-state-dict"),
    path("models/<str:name>/aliases/", views.AliasListView.as_view(), name="alias-list"),
    path("models/<str:name>/aliases/<str:alias>", views.AliasDetailView.as_view(), name="alias-detail"),
]
