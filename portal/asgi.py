"""ASGI entry point: HTTP through Django, WebSockets through Channels with the same auth."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup(set_prefix=False)

from apps.core.asgi_handler import PortalASGIHandler  # noqa: E402

django_asgi_app = PortalASGIHandler()  # Django, one hop per request on the web threads

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.core.heap import settle  # noqa: E402
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

settle()  # freeze the start-up heap so full collections stop pausing requests (apps/core/heap.py)
