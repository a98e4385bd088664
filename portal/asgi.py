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
from apps.mlflow_api import fastpath as mlflow_fastpath  # noqa: E402
from apps.serving.inference import fastpath as predict_fastpath  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Hot paths (token-authenticated predictions, online feature reads, and the MLflow client's
        # log-metric/log-batch) ahead of Django's full stack; they share the token, permission, validation and audit code, and hand everything
        # else to Django. Predict is outermost: it is the busiest and its test is the cheapest.
        "http": predict_fastpath.wrap(mlflow_fastpath.wrap(fastpath.wrap(django_asgi_app))),
        "websocket": PortalWebSocketAuth(URLRouter(websocket_urlpatterns())),
    }
)

settle()  # freeze the start-up heap so full collections stop pausing requests (apps/core/heap.py)
