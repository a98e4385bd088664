from django.urls import path

from apps.notifications.api import views

urlpatterns = [
    path("notifications/", views.NotificationListView.as_view(), name="notification-list"),
    path("notifications/read-all", views.NotificationReadAllView.as_view(), name="notification-read-all"),
    path("notifications/<str:pk>/read", views.NotificationReadView.as_view(), name="notification-read"),
]
