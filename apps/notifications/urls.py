from django.urls import path

from apps.notifications import views

urlpatterns = [
    path("notifications/", views.notification_list, name="list"),
    path("notifications/read-all/", views.notification_read_all, name="read-all"),
    path("notifications/<int:pk>/open/", views.notification_open, name="open"),
]
