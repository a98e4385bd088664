"""The lean ASGI path for `POST /api/v1/features/online` (routed ahead of Django in portal/asgi.py).

No DRF, no sessions, no middleware: the same token check (apps.accounts.tokens.find_token, scope
`features` or `read`), the same object permission check (apps.core.permissions via
reader.resolve_views), the same validation, PII masking and audit as the DRF view, and the same
JSON. Token, view metadata and access decisions are cached in process and dropped when the Redis
generation counter moves; the counter is read in the same pipeline as the feature values.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import types

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from apps.features import nearcache, online, reader

PATH = "/api/v1/features/online"
MAX_BODY = 1 << 20
SCOPES = ("features", "read")
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_clients: dict = {}


class _Reply(Exception):
    def __init__(self, status: int, body: dict, headers=()):
        self.status, self.body, self.headers = status, body, list(headers)


def _read_script():
    """The online store's read script on an asyncio Redis client of the running loop."""
    loop = asyncio.get_running_loop()
    script = _clients.get(loop)
    if script is None:
        c = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
        script = c.register_script(online.READ_LUA)
        _clients.clear()  # one event loop per process in production; tests may create several
        _clients[loop] = script
    return script


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
    from apps.accounts.tokens import find_token

    token = find_token(key)
    if token is None:
        return None
    expires = token.expires_at.timestamp() if token.expires_at else None
    return token.user, tuple(token.scopes or ()), expires


async def _user_for(header: bytes):
    key = header[6:].decode("latin-1").strip()
    if not key:
        raise _Reply(
            401, {"detail": "Authorization header has no token after 'Token'."}, [(b"www-authenticate", b"Token")]
        )
    digest = hashlib.sha256(key.encode()).hexdigest()
    hit = reader.CACHE.tokens.get(digest)
    now = time.time()
    if hit is None or time.monotonic() - hit[3] >= reader.CACHE_MAX_AGE:
        loaded = await sync_to_async(_load_token)(key)
        if loaded is None:
            reader.CACHE.tokens.pop(digest, None)
            raise _Reply(401, {"detail": "Invalid, expired or revoked token."}, [(b"www-authenticate", b"Token")])
        if len(reader.CACHE.tokens) > reader.CACHE_MAX_ENTRIES:
            reader.CACHE.tokens.clear()
        hit = (*loaded, time.monotonic())
        reader.CACHE.tokens[digest] = hit
    user, scopes, expires, _ = hit
    if expires is not None and expires <= now:
        reader.CACHE.tokens.pop(digest, None)
        raise _Reply(401, {"detail": "Invalid, expired or revoked token."}, [(b"www-authenticate", b"Token")])
    if not any(s in scopes for s in SCOPES):
        raise _Reply(
            403, {"detail": "This token needs the 'features' or 'read' scope; create one on your profile page."}
        )
    return user


def _refuse_region(user, meta) -> None:
    from apps.features.models import FeatureView
    from apps.features.offline import check_residency

    check_residency(meta.region, actor=user, obj=FeatureView.objects.get(pk=meta.id), action="online-read")


async def _serve(scope, receive) -> dict:
    header = next((v for k, v in scope.get("headers") or () if k == b"authorization"), b"")
    user = await _user_for(header)
    raw = await _body(receive)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Reply(400, {"detail": "The body is not valid JSON."}) from None
    try:
        refs, entities, n = reader.parse_request(body)
    except reader.BadRequest as exc:
        raise _Reply(400, {exc.field: [exc.detail]}) from None
    names = list(dict.fromkeys(r[1] for r in refs))
    here = getattr(settings, "PORTAL_REGION", None) or "default"
    script = _read_script()
    for attempt in (0, 1):
        seen = reader.CACHE.gen
        metas = reader.cached_views(user.pk, names)
        if metas is None:
            try:
                metas = await sync_to_async(reader.resolve_views)(user, names)
            except Http404 as exc:
                raise _Reply(404, {"detail": str(exc)}) from None
        for meta in metas.values():
            if meta.region != here:
                try:
                    await sync_to_async(_refuse_region)(user, meta)
                except PermissionDenied as exc:
                    raise _Reply(403, {"detail": str(exc)}) from None
        try:
            keys, fields = reader.plan_keys(refs, entities, n, metas)
        except reader.BadRequest as exc:
            raise _Reply(400, {exc.field: [exc.detail]}) from None
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
    return out


async def handle(scope, receive, send) -> None:
    try:
        status, body, headers = 200, await _serve(scope, receive), []
    except _Reply as reply:
        status, body, headers = reply.status, reply.body, reply.headers
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", str(len(payload)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})
