from django.urls import path

from apps.core.realtime import NotificationsConsumer

websocket_urlpatterns = [
    path("ws/notifications/", NotificationsConsumer.as_asgi(), kwargs={"pk": "me"}),
]
