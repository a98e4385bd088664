from django.urls import path

from apps.training.consumers import JobConsumer

websocket_urlpatterns = [path("ws/training/jobs/<int:pk>/", JobConsumer.as_asgi())]
