"""ASGI app for bench/catalog_download.py: the portal plus one baseline route.

The baseline `GET /bench/plain/<name>/<version>` runs the same code as the real artifact download
(token auth, DRF view, permission check, audit entry, vault.streaming_response over ASGI) but
streams the plaintext file from disk instead of decrypting the vault blob. Only for benchmarks:
this module is never imported by the portal.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.urls import include, path  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from apps.catalog import selectors  # noqa: E402
from apps.core import vault  # noqa: E402
from apps.core.audit import audit_event  # noqa: E402

CHUNK = 1 << 20


def _file_chunks(file_path: str):
    with open(file_path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


class PlainDownloadView(APIView):
    def get(self, request, name, version):
        found = selectors.version_for(request.user, name, version)
        audit_event(actor=request.user, event="bench.plain_download", obj=found, request=request)
        plain = os.environ["CATALOG_BENCH_PLAINTEXT"]
        return vault.streaming_response(
            _file_chunks(plain), request=request, size=os.path.getsize(plain), filename="plain.onnx"
        )


urlpatterns = [
    path("bench/plain/<str:name>/<str:version>", PlainDownloadView.as_view()),
    path("", include("portal.urls")),
]
settings.ROOT_URLCONF = __name__

from portal.asgi import application  # noqa: E402, F401
