"""What the lean ASGI paths share (online feature reads in apps/features/fastpath.py, predict in
apps/serving/inference/fastpath.py): the Authorization header, the body read with a limit, the
caller's API rate spent from leases (apps/core/ratelimit.py) with the top-up after the answer has
gone out, and the JSON answer. Each path keeps its own routing, caches and domain calls.

A refusal is raised as `Reply(status, body, headers)` and sent by `send_json`, so both paths answer
with the API's JSON shapes (apps.core.errors.error_body for domain errors).
"""

from __future__ import annotations

import asyncio
import json
import logging

import redis.asyncio as aioredis
from django.conf import settings

from apps.core import ratelimit

JSON_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_clients: dict = {}
_scripts: dict = {}
log = logging.getLogger(__name__)


class Reply(Exception):
    """Answer now with `status` and the JSON `body` (and extra `headers`)."""

    def __init__(self, status: int, body: dict, headers=()):
        self.status, self.body, self.headers = status, body, list(headers)


def authorization(scope) -> bytes | None:
    """The raw Authorization header of an ASGI scope, or None."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return value
    return None


def has_token(scope) -> bool:
    """An `Authorization: Token ...` or `Bearer ...` header: the lean paths serve token callers only
    (a browser session goes through Django's whole stack)."""
    header = authorization(scope)
    if header is None:
        return False
    start = header[:7].lower()
    return start.startswith(b"token ") or start == b"bearer "


def lean_route(handles, handle, other):
    """An ASGI app that sends what `handles(scope)` claims to `handle`, everything else to `other`."""

    async def app(scope, receive, send):
        if handles(scope):
            return await handle(scope, receive, send)
        return await other(scope, receive, send)

    return app


def async_script(lua: str):
    """`lua` registered on the asyncio Redis client of the running loop (one client per loop)."""
    loop = asyncio.get_running_loop()
    found = _scripts.get((loop, lua))
    if found is None:
        client = _clients.get(loop)
        if client is None:  # one event loop per process in production; tests may create several
            _clients.clear()
            _scripts.clear()
            client = _clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        found = _scripts[(loop, lua)] = client.register_script(lua)
    return found


async def read_body(receive, limit: int, too_large: str) -> bytes:
    """The whole request body; 413 with `too_large` past `limit` bytes, 400 when the client left."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Reply(400, {"detail": "The client disconnected."})
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Reply(413, {"detail": too_large})
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def throttle(user_id: int) -> bool:
    """Spend one request of the user's API rate or raise a 429 Reply; True when the lease should
    be topped up after the answer (`top_up`), so steady traffic never waits on Redis."""
    rate = ratelimit.rate()
    if rate is None:
        return False
    spent = ratelimit.spend(user_id, rate)
    if spent is not None:
        return spent
    keys, args, window, frac = ratelimit.claim_args(user_id, rate)
    reply = await async_script(ratelimit.RATE_LUA)(keys=keys, args=args)
    try:
        ratelimit.settle(user_id, rate, reply, window, frac)
    except ratelimit.Throttled as exc:
        raise Reply(429, {"detail": str(exc)}, [(b"retry-after", str(exc.wait).encode())]) from None
    return False


async def top_up(user_id: int) -> None:
    """Lease the user's next block of requests (after the response went out)."""
    try:
        rate = ratelimit.rate()
        if rate is not None:
            keys, args, window, _ = ratelimit.claim_args(user_id, rate)
            granted = int((await async_script(ratelimit.RATE_LUA)(keys=keys, args=args))[0])
            if granted > 0:
                ratelimit.keep(user_id, rate[0], window, granted, ratelimit.lease_size(rate[1]))
    except Exception as exc:  # the next request simply asks Redis itself
        log.warning("rate limit top-up failed: %s", exc)
    finally:
        ratelimit.top_up_done(user_id)


async def send_json(send, status: int, body: dict, headers=()) -> None:
    """One JSON answer. backslashreplace: an echoed lone surrogate becomes the JSON escape
    "\\ud800" instead of an error."""
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})
