"""Django's ASGI handler, one thread hop per request on a bounded pool of web threads.

Django's own `ASGIHandler` runs each request in a fresh `ThreadSensitiveContext`: a new thread
per request, three to five hops between the event loop and that thread (request_started, every
sync middleware, the view, response.close), and a new database connection per request because
Django's connections are per thread (measured: 99 PostgreSQL sessions opened by 100 sequential
requests, 88 backends open under 8 clients). This handler reads the body on the event loop,
then runs the whole synchronous chain (request_started, middleware, view, response.close and
request_finished) in one hop on `settings.PORTAL_WEB_THREADS` long-lived threads, as a threaded
WSGI server would, and sends the answer from the loop.

What follows from it:
- Database connections are bounded by the pool threads (SQLite: one reused connection per
  thread; PostgreSQL: Django's psycopg pool, `settings.DATABASE_POOL_SIZE` per process, returned
  at request_finished).
- A slow request (a COPY, a commit) holds one web thread, not the whole process.
- A streaming response with a synchronous iterator is read to the end in the same thread that
  ran the view (what Django's handler does too, in memory), so a lazily evaluated queryset runs
  on that thread's connection. Asynchronous iterators (vault downloads) stream from the loop.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def web_executor() -> ThreadPoolExecutor:
    """The process's web threads (created on first use, after a fork)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.PORTAL_WEB_THREADS, thread_name_prefix="web")
        return _executor


async def _replay(chunks: list[bytes]):
    for chunk in chunks:
        yield chunk


class PortalASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)  # the chain runs whole on a web thread

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await sync_to_async(self._respond, thread_sensitive=False, executor=web_executor())(
                scope, body_file
            )
            await self.send_response(response, send)
        finally:
            body_file.close()

    async def read_body(self, receive):
        """A body that comes whole in its first message (every GET, most API calls) stays in
        memory; larger, chunked ones spool to disk past FILE_UPLOAD_MAX_MEMORY_SIZE as Django's do."""
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted()
        if not message.get("more_body", False):
            body = message.get("body", b"")
            if len(body) <= settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
                return io.BytesIO(body)
        replay = [message]

        async def rest():
            return replay.pop() if replay else await receive()

        return await super().read_body(rest)

    def _respond(self, scope, body_file):
        """Everything synchronous about one request, on one web thread."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)  # reset_queries, close_old_connections
        request, response = self.create_request(scope, body_file)
        try:
            if request is not None:
                response = self.get_response(request)
                response._handler_class = self.__class__
                if isinstance(response, FileResponse):
                    response.block_size = self.chunk_size
            if response.streaming and not response.is_async:
                response.streaming_content = _replay(list(response.streaming_content))
        finally:
            if response is not None:
                response.close()  # request_finished: this thread's connection back (pool) or kept (SQLite)
            else:
                signals.request_finished.send(sender=self.__class__)
        return response
