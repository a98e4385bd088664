from django.urls import path

from apps.privacy.api import views

urlpatterns = [
    path("privacy/access", views.AccessView.as_view(), name="access"),
    path("privacy/erasures/", views.ErasureListView.as_view(), name="erasure-list"),
    path("privacy/erasures/<int:pk>/", views.ErasureDetailView.as_view(), name="erasure-detail"),
    path("privacy/erasures/<int:pk>/certificate", views.ErasureCertificateView.as_view(), name="erasure-certificate"),
]
