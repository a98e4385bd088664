"""The lean ASGI path for `POST /api/v1/endpoints/{name}/predict` with a token (portal/asgi.py
routes it ahead of Django). No DRF, no middleware, no sessions; the same code decides:
the token (apps.accounts.tokens.find_token, `Token` or `Bearer`), its scope (`token_allows`), the
caller's API rate (apps/core/ratelimit.py, leases topped up after the response went out), then
`predict_call`, which the Django view runs too, so statuses and JSON are the same.

Per request, once caches are warm: a dict lookup for the token, one for the plan, one for the
view decision, numpy conversion, the ONNX Runtime call inline on the event loop (tens of
microseconds for an MLP; bodies over INLINE_BODY_BYTES run on a worker thread instead), a few
additions to the log counters. Anything that needs the database or a model load raises
`cache.Miss` before any side effect and is answered again off the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from django.conf import settings
from django.core.signals import request_finished, request_started

from apps.core import metrics
from apps.core.asgi_handler import web_executor
from apps.core.leanpath import Reply, authorization, has_token, lean_route, read_body, send_json, throttle
from apps.core.leanpath import top_up as top_up_lease
from apps.core.permissions import token_allows
from apps.serving.inference import cache, logbook, shadow
from apps.serving.inference.predict import predict_call

PREFIX = "/api/v1/endpoints/"
SUFFIX = "/predict"
SCOPE = "predict"
ROUTE = "/api/v1/endpoints/<str:name>/predict"  # the route pattern Django names it by (platform metrics)
INLINE_BODY_BYTES = 32 << 10
_WWW = [(b"www-authenticate", b"Token")]
_INVALID = "Invalid, expired or revoked token."
log = logging.getLogger(__name__)


def endpoint_name(path: str) -> str | None:
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    name = path[len(PREFIX) : -len(SUFFIX)]
    return name if name and "/" not in name else None


def handles(scope) -> bool:
    """True for POST .../endpoints/{name}/predict with a Token or Bearer header (sessions: Django)."""
    if scope.get("type") != "http" or scope.get("method") != "POST" or endpoint_name(scope.get("path", "")) is None:
        return False
    return has_token(scope)


def wrap(django_app):
    """`"http": fastpath.wrap(other_app)`: predict with a token here, everything else there."""
    logbook.start()
    shadow.start()
    return lean_route(handles, handle, django_app)


# --- caller --------------------------------------------------------------------------------------
def _load_token(key: str):
    from apps.accounts.tokens import find_token  # accounts' token models load after apps are ready

    token = find_token(key)
    if token is None:
        return None
    return token, (token.expires_at.timestamp() if token.expires_at else None)


def _load_token_with_database(key: str):
    request_started.send(sender=PredictFastPath)
    try:
        return _load_token(key)
    finally:
        request_finished.send(sender=PredictFastPath)


async def _token(header: bytes):
    keyword, _, key = header.decode("latin-1").partition(" ")
    key = key.strip()
    if not key:
        raise Reply(401, {"detail": f"Authorization header has no token after {keyword!r}."}, _WWW)
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    cache.check_generation()
    hit = cache.token_get(digest)
    if hit is None:
        loaded = await asyncio.get_running_loop().run_in_executor(web_executor(), _load_token_with_database, key)
        if loaded is None:
            cache.token_drop(digest)
            raise Reply(401, {"detail": _INVALID}, _WWW)
        cache.token_put(digest, *loaded)
        token, expires = loaded
    else:
        token, expires, _ = hit
    if expires is not None and expires <= time.time():
        cache.token_drop(digest)
        raise Reply(401, {"detail": _INVALID}, _WWW)
    if not token_allows(token, SCOPE):
        raise Reply(403, {"detail": f"This token lacks the '{SCOPE}' scope; create one with it on your profile page."})
    return token


def _call(user, token, name, raw, client, allow_load):
    return predict_call(user=user, token=token, endpoint_name=name, body=raw, client=client, allow_load=allow_load)


def _call_with_database(user, token, name, raw, client):
    """The slow path (a cache miss): bracketed like a Django request, so connections are checked
    and recycled (and every request_started hook runs) as for any request that reads the database."""
    request_started.send(sender=PredictFastPath)
    try:
        return _call(user, token, name, raw, client, True)
    finally:
        request_finished.send(sender=PredictFastPath)


class PredictFastPath:
    """The sender of request_started/request_finished on the lean path's database calls."""


async def _serve(scope, receive) -> tuple[int, dict, list, int | None]:
    token = await _token(authorization(scope) or b"")
    user = token.user
    limit = settings.SERVING_MAX_BODY_BYTES
    raw = await read_body(receive, limit, f"The request body is over {limit} bytes; send fewer rows.")
    top_up = await throttle(user.pk)
    name = endpoint_name(scope["path"])
    client = (scope.get("client") or ("",))[0]
    try:
        if len(raw) <= INLINE_BODY_BYTES:
            status, body, headers = _call(user, token, name, raw, client, False)
        else:
            status, body, headers = await asyncio.to_thread(_call, user, token, name, raw, client, False)
    except cache.Miss:
        loop = asyncio.get_running_loop()  # the web threads, like Django's requests (apps/core/asgi_handler.py)
        status, body, headers = await loop.run_in_executor(
            web_executor(), _call_with_database, user, token, name, raw, client
        )
    return status, body, headers, (user.pk if top_up else None)


async def handle(scope, receive, send) -> None:
    started = time.perf_counter()
    top_up = None
    try:
        status, body, headers, top_up = await _serve(scope, receive)
    except Reply as reply:
        status, body, headers = reply.status, reply.body, reply.headers
    except Exception:  # a bug, not the client's fault: JSON like the API's handler
        log.exception("predict fast path failed")
        status, body, headers = 500, {"detail": "Internal error; it has been logged."}, []
    await send_json(send, status, body, headers)
    metrics.HTTP.observe((ROUTE, "POST", status), time.perf_counter() - started)
    if top_up is not None:
        await top_up_lease(top_up)
