"""WebSockets: authentication, per-object groups, one broadcaster, and a base consumer.

Messages leave the server only after the transaction that caused them commits, so a browser
never sees an event for data that was rolled back.

One broadcaster: every live message of every app leaves through this module's sender thread
(`broadcast` after commit, `send_now` at once), the one event loop thread a process runs for
sockets. Coalescers that merge a window's messages first (the experiments' metric updates,
`apps.experiments.live`) schedule their flush on the same thread with `call_later`.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.db import transaction

from apps.core.permissions import token_allows
from portal.discovery import portal_app_modules

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
MAX_CLIENT_MESSAGE_BYTES = 4096
# How long a socket's "may view" answer is trusted before the next delivery asks again: an
# unshare closes open sockets within this time (and costs one query per socket per window).
ACCESS_RECHECK_S = 5.0


def group_name(kind: str, pk: object) -> str:
    return f"{kind}.{pk}"


def broadcast(group: str, message: dict[str, Any]) -> None:
    """Send `message` to every socket in `group` once the current transaction commits."""
    transaction.on_commit(lambda: send_now(group, message))


def send_now(group: str, message: dict[str, Any]) -> None:
    """Queue `message` for `group` on this process's sender thread; returns at once, in order.

    `async_to_sync(group_send)` per call built a new event loop and Redis connection each time
    (about 5 ms on a training job's writer thread); one long-lived loop keeps its connections.
    """
    _sender().put(group, message)


def call_later(delay_s: float, callback: Callable[[], None]) -> None:
    """Run `callback()` on this process's sender thread after `delay_s` seconds (at once when 0).

    For coalescers: the callback merges what arrived during its window and sends it with
    `send_now`, which queues behind everything queued before. It runs on the event loop, so it
    must be short and must not block or touch the database; an exception is logged, not raised.
    `flush_sends` waits for scheduled callbacks too."""
    _sender().call_later(delay_s, callback)


class _Sender:
    """One event loop thread per process that sends queued messages to the channel layer in order."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue | None = None
        self.idle = threading.Event()
        self.idle.set()
        self.pending = 0
        self.lock = threading.Lock()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), name="realtime-sender", daemon=True).start()
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        ready.set()
        self.loop.run_until_complete(self._drain())

    async def _drain(self) -> None:
        layer = get_channel_layer()
        while True:
            group, message = await self.queue.get()
            try:
                await layer.group_send(group, {"type": "portal.event", "payload": message})
            except Exception:  # a missed live update must never fail the write that caused it
                log.exception("broadcast to %s failed", group)
            self._done()

    def _started(self) -> None:
        with self.lock:
            self.pending += 1
            self.idle.clear()

    def _done(self) -> None:
        with self.lock:
            self.pending -= 1
            if not self.pending:
                self.idle.set()

    def put(self, group: str, message: dict[str, Any]) -> None:
        self._started()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (group, message))

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._started()  # counted from now, so `flush` also waits for what the callback will send
        self.loop.call_soon_threadsafe(self.loop.call_later, max(0.0, delay_s), self._call, callback)

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # a lost live update must never stop the sender
            log.exception("scheduled live update failed")
        finally:
            self._done()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything queued so far was sent (tests, process exit)."""
        return self.idle.wait(timeout)


_sender_instance: _Sender | None = None
_sender_lock = threading.Lock()


def _sender() -> _Sender:
    global _sender_instance
    sender = _sender_instance
    if sender is None or sender.pid != os.getpid():  # first use, or a forked worker process
        with _sender_lock:
            sender = _sender_instance
            if sender is None or sender.pid != os.getpid():
                sender = _sender_instance = _Sender()
    return sender


def flush_sends(timeout: float = 2.0) -> bool:
    """Block until queued live messages have left this process (or `timeout` passes)."""
    sender = _sender_instance
    return True if sender is None or sender.pid != os.getpid() else sender.flush(timeout)


atexit.register(flush_sends, 1.0)


async def send_now_async(group: str, message: dict[str, Any]) -> None:
    await get_channel_layer().group_send(group, {"type": "portal.event", "payload": message})


class ObjectConsumer(AsyncJsonWebsocketConsumer):
    """Subscribe to one object's group. Subclasses set `group_kind` and implement `load_object`
    (the kind's `_for` selector: the object, or None when the user may not view it).

    Unauthenticated sockets close with 4401; sockets for objects the user may not view close
    with 4403 (the same answer whether the object exists or not). Access is asked again before a
    delivery once the last answer is `ACCESS_RECHECK_S` old, so a socket opened before an unshare
    closes with 4403 instead of streaming on.
    """

    group_kind = ""
    url_kwarg = "pk"

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not token_allows(self.scope.get("token"), "read"):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        pk = self.scope["url_route"]["kwargs"].get(self.url_kwarg)
        obj = await database_sync_to_async(self.load_object)(user, pk)
        if obj is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.object = obj
        self.checked_at = time.monotonic()
        self.group = group_name(self.group_kind, obj.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json({"type": "subscribed", "group": self.group})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    def load_object(self, user, pk):  # pragma: no cover - abstract
        raise NotImplementedError

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Clients may only ping; anything else gets a clear error and the socket stays open."""
        if bytes_data is not None or text_data is None or len(text_data) > MAX_CLIENT_MESSAGE_BYTES:
            await self.send_json({"type": "error", "detail": "Send JSON text messages under 4 KiB."})
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "detail": "Message is not valid JSON."})
            return
        if not isinstance(message, dict) or message.get("type") != "ping":
            await self.send_json(
                {"type": "error", "detail": 'Unknown message; the only one accepted is {"type": "ping"}.'}
            )
            return
        await self.send_json({"type": "pong"})

    async def portal_event(self, event: dict) -> None:
        if getattr(self, "group", None) is None:  # closed for lost access; a message was in flight
            return
        if time.monotonic() - self.checked_at >= ACCESS_RECHECK_S and not await self._still_allowed():
            return
        await self.send_json(event["payload"])

    async def _still_allowed(self) -> bool:
        pk = self.scope["url_route"]["kwargs"].get(self.url_kwarg)
        if await database_sync_to_async(self.load_object)(self.scope.get("user"), pk) is None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        self.checked_at = time.monotonic()
        return True


class NotificationsConsumer(ObjectConsumer):
    """The signed-in user's own notifications (job finished, approval requested, ...)."""

    group_kind = "user"

    def load_object(self, user, pk):
        return user


TOKEN_KEYWORDS = (b"token ", b"bearer ")


def _token_header(scope) -> str | None:
    header = dict(scope.get("headers") or []).get(b"authorization", b"")
    for keyword in TOKEN_KEYWORDS:
        if header.lower().startswith(keyword):
            return header[len(keyword) :].decode("latin-1").strip()
    return None


class TokenAuthMiddleware:
    """Accept `Authorization: Token <key>` or `Bearer <key>` on the handshake (scripts). A bad,
    expired or revoked key is anonymous (4401); a good key without the `read` scope is signed in
    but refused (4403, decided in the consumer through `token_allows`)."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        key = _token_header(scope)
        if key is not None:
            from django.contrib.auth.models import AnonymousUser

            from apps.accounts.tokens import find_token  # imported at handshake: models load after start-up

            token = await database_sync_to_async(find_token)(key)
            user = token.user if token is not None else AnonymousUser()
            scope = {**scope, "user": user, "token": token, "token_auth": True}
        return await self.inner(scope, receive, send)


class PortalWebSocketAuth:
    """Session sockets must come from an allowed origin; token sockets need no Origin header."""

    def __init__(self, inner):
        session_stack = AuthMiddlewareStack(inner)
        self.by_token = TokenAuthMiddleware(inner)
        self.by_session = OriginValidator(session_stack, _allowed_origins())

    async def __call__(self, scope, receive, send):
        if _token_header(scope) is not None:
            return await self.by_token(scope, receive, send)
        return await self.by_session(scope, receive, send)


def _allowed_origins() -> list[str]:
    origins = list(settings.ALLOWED_HOSTS) + [o.split("://", 1)[-1] for o in settings.CSRF_TRUSTED_ORIGINS]
    return [o[1:] if o.startswith(".") else o for o in origins] + ["127.0.0.1:*", "localhost:*"]


def websocket_urlpatterns() -> list:
    patterns: list = []
    for _label, module in portal_app_modules("routing"):
        patterns.extend(getattr(module, "websocket_urlpatterns", []))
    return patterns
