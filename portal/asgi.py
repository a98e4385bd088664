"""ASGI entry point: HTTP through Django, WebSockets through Channels with the same auth."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.core.realtime import PortalWebSocketAuth, websocket_urlpatterns  # noqa: E402
from apps.features import fastpath  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Hot path (token-authenticated online feature reads) ahead of Django's full stack; it shares
        # the token, permission, validation and audit code, and hands everything else to Django.
        "http": fastpath.wrap(django_asgi_app),
        "websocket": PortalWebSocketAuth(URLRouter(websocket_urlpatterns())),
    }
)
