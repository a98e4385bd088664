"""The lean ASGI path for `POST /api/v1/features/online` (routed ahead of Django in portal/asgi.py).

No DRF, no sessions, no middleware: the same token check (apps.accounts.tokens.find_token, then
`token_allows(token, ("features", "read"))`), the same visibility and PII decisions
(`can` / `can_view_pii` via reader.resolve_views), the same validation, masking and audit as the
DRF view, and the same JSON (errors through `apps.core.errors.error_body`). Token, view metadata and access decisions are cached in process and dropped when the Redis
generation counter moves; the counter is read in the same pipeline as the feature values.

Rate limit: the per-user rate of every API call (apps/core/ratelimit.py), with the lease topped up
after a response has gone out, so near-cache hits cost no round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import types

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.core import ratelimit
from apps.core.errors import DomainError, error_body
from apps.core.permissions import token_allows
from apps.features import nearcache, offline, online, reader

PATH = "/api/v1/features/online"
MAX_BODY = 1 << 20
SCOPES = ("features", "read")
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_clients: dict = {}
log = logging.getLogger(__name__)


class _Reply(Exception):
    def __init__(self, status: int, body: dict, headers=()):
        self.status, self.body, self.headers = status, body, list(headers)


def _scripts():
    """(read script, rate script) on an asyncio Redis client of the running loop."""
    loop = asyncio.get_running_loop()
    scripts = _clients.get(loop)
    if scripts is None:
        c = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        scripts = (c.register_script(online.READ_LUA), c.register_script(ratelimit.RATE_LUA))
        _clients.clear()  # one event loop per process in production; tests may create several
        _clients[loop] = scripts
    return scripts


def _read_script():
    """The online store's read script on an asyncio Redis client of the running loop."""
    return _scripts()[0]


# --- rate limit ----------------------------------------------------------------------------------
async def _claim(user_id: int, rate) -> tuple[tuple, int, float]:
    """One lease from Redis: (script reply, window, fraction of the window gone)."""
    keys, args, window, frac = ratelimit.claim_args(user_id, rate)
    return await _scripts()[1](keys=keys, args=args), window, frac


async def _throttle(user_id: int) -> bool:
    """Spend one request of the user's rate or raise 429; True when the lease should be topped up."""
    rate = ratelimit.rate()
    if rate is None:
        return False
    spent = ratelimit.spend(user_id, rate)
    if spent is not None:
        return spent
    reply, window, frac = await _claim(user_id, rate)
    try:
        ratelimit.settle(user_id, rate, reply, window, frac)
    except ratelimit.Throttled as exc:
        raise _Reply(429, {"detail": str(exc)}, [(b"retry-after", str(exc.wait).encode())]) from None
    return False


async def _top_up(user_id: int) -> None:
    """Lease the next block after the response went out, so steady traffic never waits on it."""
    try:
        rate = ratelimit.rate()
        if rate is not None:
            (granted, _, _), window, _ = await _claim(user_id, rate)
            if int(granted) > 0:
                ratelimit.keep(user_id, rate[0], window, int(granted), ratelimit.lease_size(rate[1]))
    except Exception as exc:  # the next request simply asks Redis itself
        log.warning("rate limit top-up failed: %s", exc)
    finally:
        ratelimit.top_up_done(user_id)


def handles(scope) -> bool:
    """True for the exact path and method, with a token (session callers go through Django)."""
    if scope.get("type") != "http" or scope.get("path") != PATH or scope.get("method") != "POST":
        return False
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return value[:6].lower() == b"token "
    return False


def wrap(django_app):
    """`application = ProtocolTypeRouter({"http": fastpath.wrap(django_asgi_app), ...})`."""

    async def app(scope, receive, send):
        if handles(scope):
            return await handle(scope, receive, send)
        return await django_app(scope, receive, send)

    return app


async def _body(receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Reply(400, {"detail": "The client disconnected."})
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _Reply(413, {"detail": f"The request body is over {MAX_BODY} bytes; ask for fewer entities."})
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _load_token(key: str):
    from apps.accounts.tokens import find_token  # accounts' token models load after apps are ready

    token = find_token(key)
    if token is None:
        return None
    expires = token.expires_at.timestamp() if token.expires_at else None
    return token, expires


async def _user_for(header: bytes):
    key = header[6:].decode("latin-1").strip()
    if not key:
        raise _Reply(
            401, {"detail": "Authorization header has no token after 'Token'."}, [(b"www-authenticate", b"Token")]
        )
    digest = hashlib.sha256(key.encode()).hexdigest()
    hit = reader.CACHE.tokens.get(digest)
    now = time.time()
    if hit is None or time.monotonic() - hit[2] >= reader.CACHE_MAX_AGE:
        loaded = await sync_to_async(_load_token)(key)
        if loaded is None:
            reader.CACHE.tokens.pop(digest, None)
            raise _Reply(401, {"detail": "Invalid, expired or revoked token."}, [(b"www-authenticate", b"Token")])
        if len(reader.CACHE.tokens) > reader.CACHE_MAX_ENTRIES:
            reader.CACHE.tokens.clear()
        hit = (*loaded, time.monotonic())
        reader.CACHE.tokens[digest] = hit
    token, expires, _ = hit
    if expires is not None and expires <= now:
        reader.CACHE.tokens.pop(digest, None)
        raise _Reply(401, {"detail": "Invalid, expired or revoked token."}, [(b"www-authenticate", b"Token")])
    if not token_allows(token, SCOPES):
        raise _Reply(
            403, {"detail": "This token needs the 'features' or 'read' scope; create one on your profile page."}
        )
    return token.user


def _refuse_region(user, meta) -> None:
    view = reader.FeatureView.objects.get(pk=meta.id)
    offline.check_residency(meta.region, actor=user, obj=view, action="online-read")


async def _serve(scope, receive) -> tuple[dict, int | None]:
    header = next((v for k, v in scope.get("headers") or () if k == b"authorization"), b"")
    user = await _user_for(header)
    raw = await _body(receive)
    top_up = await _throttle(user.pk)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Reply(400, {"detail": "The body is not valid JSON."}) from None
    try:
        refs, entities, n = reader.parse_request(body)
    except ValidationError as exc:
        raise _Reply(400, exc.message_dict) from None
    names = list(dict.fromkeys(r[1] for r in refs))
    here = offline.process_region()
    script = _read_script()
    for attempt in (0, 1):
        seen = reader.CACHE.gen
        metas = reader.cached_views(user.pk, names)
        if metas is None:
            try:
                metas = await sync_to_async(reader.resolve_views)(user, names)
            except DomainError as exc:
                raise _Reply(*error_body(exc)) from None
        for meta in metas.values():
            if meta.region != here:
                try:
                    await sync_to_async(_refuse_region)(user, meta)
                except DomainError as exc:
                    raise _Reply(*error_body(exc)) from None
        try:
            keys, fields = reader.plan_keys(refs, entities, n, metas)
        except ValidationError as exc:
            raise _Reply(400, exc.message_dict) from None
        groups = reader.read_groups(keys, fields)
        near = nearcache.get()
        res = near.lookup(groups) if near is not None else None
        if res is None:
            epoch = near.epoch if near is not None else 0
            redis_keys, argv = online.read_args(groups)
            res = await script(keys=redis_keys, args=argv)
            if near is not None:
                near.store(groups, res, epoch)
        if res[0] != seen:
            reader.CACHE.clear(res[0])
            if attempt == 0:
                continue
        break
    pii_ok = reader.pii_rights(user.pk, metas)
    out, unmasked = reader.assemble(refs, entities, n, metas, fields, res[1:], pii_ok, reader.now_micros())
    if unmasked:
        request = types.SimpleNamespace(META={"REMOTE_ADDR": (scope.get("client") or ("",))[0]})
        await sync_to_async(reader.audit_pii_read)(user, metas, unmasked, n, request=request)
    return out, (user.pk if top_up else None)


async def handle(scope, receive, send) -> None:
    top_up = None
    try:
        (body, top_up), status, headers = await _serve(scope, receive), 200, []
    except _Reply as reply:
        status, body, headers = reply.status, reply.body, reply.headers
    except Exception:  # a bug, not the client's fault: JSON like the API's handler, never uvicorn's plain text
        log.exception("online features fast path failed")
        status, body, headers = 500, {"detail": "Internal error; it has been logged."}, []
    # backslashreplace: an echoed lone surrogate becomes the JSON escape "\ud800" instead of an error
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})
    if top_up is not None:
        await _top_up(top_up)
