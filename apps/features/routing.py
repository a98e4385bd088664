from django.urls import path

from apps.features.consumers import FeatureViewConsumer

websocket_urlpatterns = [path("ws/feature-views/<int:pk>/", FeatureViewConsumer.as_asgi())]
