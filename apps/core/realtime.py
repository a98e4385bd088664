"""WebSockets: authentication, per-object groups, one broadcaster, and a base consumer.

Messages leave the server only after the transaction that caused them commits, so a browser
never sees an event for data that was rolled back.

One broadcaster: every live message of every app leaves through this module's sender thread
(`broadcast` after commit, `send_now` at once), the one event loop thread a process runs for
sockets. Coalescers that merge a window's messages first (the experiments' metric updates,
`apps.experiments.live`) schedule their flush on the same thread with `call_later`.

Revocation reaches open sockets: every object socket also joins its user's and its token's access
groups, and the services that take access away (unshare, team removal, deactivation, token
revocation) call `access_changed` after commit, so the affected sockets ask again at once and close
with 4403; a timer asks again every `ACCESS_BACKSTOP_S` in case a change took another path.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
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
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http.request import split_domain_port, validate_host
from redis.exceptions import RedisError

from apps.core.permissions import token_allows
from portal.discovery import portal_app_modules

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_LAYER_LOST = 1011  # server error: the channel layer is unreachable
CHANNEL_LAYER_ERRORS = (RedisError, ConnectionError, TimeoutError, asyncio.TimeoutError)
MAX_CLIENT_MESSAGE_BYTES = 4096
# How long a socket's "may view" answer is trusted before the next delivery asks again: an
# unshare closes open sockets within this time (and costs one query per socket per window).
ACCESS_RECHECK_S = 5.0
# The backstop: a socket asks again on this timer even when nothing is delivered, for access lost
# by a path that sends no `access_changed` (a raw group edit, an expiring token).
ACCESS_BACKSTOP_S = 30.0


def group_name(kind: str, pk: object) -> str:
    return f"{kind}.{pk}"


def user_access_group(user_id: object) -> str:
    return f"access.user.{user_id}"


def token_access_group(token_id: object) -> str:
    return f"access.token.{token_id}"


def access_changed(groups: list[str] | tuple[str, ...]) -> None:
    """Once the current transaction commits, make every socket in `groups` ask again at once
    whether its user (and token) may still view its object, closing with 4403 if not.

    Call it from a service that takes access away, with `user_access_group(user.pk)` for each
    affected user, `token_access_group(token.pk)` for a revoked token, or an object's group."""
    wanted = list(dict.fromkeys(groups))
    if wanted:
        transaction.on_commit(lambda: [_sender().put(g, {"type": "portal.recheck"}) for g in wanted])


def broadcast(group: str, message: dict[str, Any]) -> None:
    """Send `message` to every socket in `group` once the current transaction commits."""
    transaction.on_commit(lambda: send_now(group, message))


def send_now(group: str, message: dict[str, Any]) -> None:
    """Queue `message` for `group` on this process's sender thread; returns at once, in order.

    `async_to_sync(group_send)` per call built a new event loop and Redis connection each time
    (about 5 ms on a training job's writer thread); one long-lived loop keeps its connections.
    """
    _sender().put(group, {"type": "portal.event", "payload": message})


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
            group, event = await self.queue.get()
            try:
                await layer.group_send(group, event)
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

    def put(self, group: str, event: dict[str, Any]) -> None:
        """Queue a channel-layer event (`{"type": "portal.event", "payload": ...}`) for `group`."""
        self._started()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (group, event))

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
    with 4403 (the same answer whether the object exists or not). Access is asked again (the user
    and token re-read, so deactivation and revocation count): before a delivery once the last
    answer is `ACCESS_RECHECK_S` old, at once when an `access_changed` event reaches one of the
    socket's groups, and every `ACCESS_BACKSTOP_S` on a timer. Lost access closes with 4403.
    """

    group_kind = ""
    url_kwarg = "pk"
    group: str | None = None

    async def __call__(self, scope, receive, send):
        """A lost or slow channel layer (Redis) ends this socket with 1011 and one log line, not an
        unhandled traceback per socket; the browser's live view reconnects."""
        try:
            await super().__call__(scope, receive, send)
        except CHANNEL_LAYER_ERRORS as exc:
            log.warning(
                "socket %s closed: the channel layer (Redis) failed: %s", scope.get("path"), exc or type(exc).__name__
            )
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": CLOSE_LAYER_LOST})

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
        token = self.scope.get("token")
        self.access_groups = [user_access_group(user.pk)] + ([token_access_group(token.pk)] if token else [])
        for group in (self.group, *self.access_groups):
            await self.channel_layer.group_add(group, self.channel_name)
        self.backstop = asyncio.ensure_future(self._backstop())
        await self.send_json({"type": "subscribed", "group": self.group})

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def _leave(self) -> None:
        backstop = getattr(self, "backstop", None)
        if backstop is not None and backstop is not asyncio.current_task():
            backstop.cancel()
        if self.group is not None:
            for group in (self.group, *self.access_groups):
                await self.channel_layer.group_discard(group, self.channel_name)
            self.group = None

    async def _backstop(self) -> None:
        """Ask again on a timer, through the socket's own channel so the check runs in turn with
        deliveries (never two at once)."""
        while True:
            await asyncio.sleep(ACCESS_BACKSTOP_S)
            await self.channel_layer.send(self.channel_name, {"type": "portal.recheck"})

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
        if self.group is None:  # closed for lost access; a message was in flight
            return
        if time.monotonic() - self.checked_at >= ACCESS_RECHECK_S and not await self._still_allowed():
            return
        await self.send_json(event["payload"])

    async def portal_recheck(self, event: dict) -> None:
        """Access may have been taken away (`access_changed`, or the backstop timer): ask now."""
        if self.group is not None:
            await self._still_allowed()

    async def _still_allowed(self) -> bool:
        if await database_sync_to_async(self._current_object)() is None:
            await self._leave()
            await self.close(code=CLOSE_FORBIDDEN)
            return False
        self.checked_at = time.monotonic()
        return True

    def _current_object(self):
        """`load_object` for the user and token as the database has them now (the handshake's
        copies would still say active after a deactivation or a revocation)."""
        user = get_user_model().objects.filter(pk=self.scope["user"].pk, is_active=True).first()
        if user is None:
            return None
        token = self.scope.get("token")
        if token is not None:
            token = type(token).objects.filter(pk=token.pk).first()
            if token is None or not token.is_active or not token_allows(token, "read"):
                return None
        return self.load_object(user, self.scope["url_route"]["kwargs"].get(self.url_kwarg))


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
    """Session sockets must come from the portal's own origin; token sockets need no Origin header."""

    def __init__(self, inner):
        self.by_token = TokenAuthMiddleware(inner)
        self.by_session = SameOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope, receive, send):
        if _token_header(scope) is not None:
            return await self.by_token(scope, receive, send)
        return await self.by_session(scope, receive, send)


class SameOriginValidator:
    """Accept a cookie-authenticated handshake only from a page of the portal itself.

    A browser sends its cookies with a socket opened by any page, and cookies do not tell ports
    apart, so a page on another localhost port (or any site) could otherwise open a socket as the
    signed-in user. As Django's CSRF check does for forms, the Origin must be the socket's own
    scheme and host (a host in ALLOWED_HOSTS, port included), one of CSRF_TRUSTED_ORIGINS, or
    the origin of PORTAL_BASE_URL (behind a proxy that rewrites Host, set one of the latter two).
    Refused handshakes are denied before accept (HTTP 403), as channels' OriginValidator does.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        origin = dict(scope.get("headers") or []).get(b"origin")
        if origin is not None and origin_allowed(scope, origin.decode("latin-1")):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def origin_allowed(scope, origin: str) -> bool:
    """True when `origin` (scheme://host[:port]) may open a session socket for `scope`."""
    origin = origin.lower().rstrip("/")
    if origin in configured_origins():
        return True
    if any(_wildcard_match(origin, o) for o in settings.CSRF_TRUSTED_ORIGINS if "://*." in o):
        return True
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
    if not host or not validate_host(split_domain_port(host)[0], settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    return origin == f"{scheme}://{host}"


def configured_origins() -> set[str]:
    """The origins named in settings: CSRF_TRUSTED_ORIGINS and PORTAL_BASE_URL's."""
    base = settings.PORTAL_BASE_URL.split("://", 1)
    named = [*settings.CSRF_TRUSTED_ORIGINS, f"{base[0]}://{base[-1].split('/', 1)[0]}"]
    return {o.lower().rstrip("/") for o in named}


def _wildcard_match(origin: str, pattern: str) -> bool:
    """`https://*.example.com` (Django's CSRF_TRUSTED_ORIGINS form) matches its subdomains."""
    scheme, _, domain = pattern.lower().partition("://*.")
    return origin.startswith(f"{scheme}://") and (
        origin.split("://", 1)[1].split(":", 1)[0].endswith(f".{domain.split(':', 1)[0]}")
    )


def websocket_urlpatterns() -> list:
    patterns: list = []
    for _label, module in portal_app_modules("routing"):
        patterns.extend(getattr(module, "websocket_urlpatterns", []))
    return patterns
