"""ASGI entry point: HTTP through Django, WebSockets through Channels with the same auth."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.core.realtime import PortalWebSocketAuth, websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": PortalWebSocketAuth(URLRouter(websocket_urlpatterns())),
    }
)
