from django.urls import path

from apps.privacy import views

urlpatterns = [
    path("privacy/", views.requests_page, name="requests"),
    path("privacy/erasures/<int:pk>/", views.erasure_detail, name="erasure-detail"),
    path("privacy/erasures/<int:pk>/certificate.json", views.erasure_certificate, name="erasure-certificate"),
]
