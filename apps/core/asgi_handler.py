"""Django's ASGI handler with chosen hot paths served whole on a worker thread.

Under ASGI, Django runs every synchronous view and middleware on one shared thread
(`thread_sensitive=True`), so one process handles one sync request at a time and a request's
database waits (a COPY, a commit) block all others. For the paths in
`settings.PORTAL_THREADED_PATHS` (POST only) the whole request runs the synchronous handler
chain, as under a threaded WSGI server, on the event loop's thread pool: the same middleware,
DRF authentication, throttling, permissions and error handling, with per-thread database
connections that are checked before and after each request like Django does per request.
Measured on the 1,000-point log-batch ingest: 46,900 points/s at p99 68 ms with two clients,
against 31,000 points/s at p99 120 ms on the shared thread (docs/performance/experiments.md).
"""

from __future__ import annotations

import re

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections


class PortalASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        patterns = settings.PORTAL_THREADED_PATHS
        self.threaded = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self.sync_handler = BaseHandler()
        self.sync_handler.load_middleware(is_async=False)

    def is_threaded(self, request) -> bool:
        return self.threaded is not None and request.method == "POST" and bool(self.threaded.fullmatch(request.path))

    async def run_get_response(self, request):
        if not self.is_threaded(request):
            return await super().run_get_response(request)
        response = await sync_to_async(self._respond_in_thread, thread_sensitive=False)(request)
        response._handler_class = self.__class__
        return response

    def _respond_in_thread(self, request):
        close_old_connections()  # this thread's connection: drop it if broken or past its age
        try:
            return self.sync_handler.get_response(request)
        finally:
            close_old_connections()
