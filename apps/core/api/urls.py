from django.urls import path

from apps.core.api import keys, views

urlpatterns = [
    path("audit/", views.AuditListView.as_view(), name="audit-list"),
    path("audit/verify", views.AuditVerifyView.as_view(), name="audit-verify"),
    path("keys/", keys.KeyRingView.as_view(), name="keys"),
    path("keys/rotate", keys.KeyRotateView.as_view(), name="keys-rotate"),
    path("keys/rotations/<int:pk>/", keys.KeyRotationDetailView.as_view(), name="key-rotation"),
]
