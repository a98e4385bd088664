"""ASGI app for bench/features_online.py: the portal with the features fast path routed first,
exactly as portal/asgi.py will route it (`fastpath.wrap(django_asgi_app)`). Benchmarks only."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_app = get_asgi_application()

from apps.features import fastpath  # noqa: E402

app = fastpath.wrap(django_app)
