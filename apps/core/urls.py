from django.urls import path

from apps.core import keyring_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("audit/", views.audit, name="audit"),
    path("keys/", keyring_views.keys_page, name="keys"),
    path("keys/rotate", keyring_views.keys_rotate, name="keys-rotate"),
]
