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

import hashlib
import json
import logging
import time
import types

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from apps.core import metrics
from apps.core.errors import DomainError, error_body
from apps.core.leanpath import Reply, async_script, has_token, lean_route, read_body, send_json, throttle
from apps.core.leanpath import top_up as top_up_lease
from apps.core.permissions import token_allows
from apps.features import nearcache, offline, online, reader

PATH = "/api/v1/features/online"
MAX_BODY = 1 << 20
SCOPES = ("features", "read")
ROUTE = "/api/v1/features/online"  # the route pattern Django names it by (platform metrics)
log = logging.getLogger(__name__)


def _read_script():
    """The online store's read script on an asyncio Redis client of the running loop."""
    return async_script(online.READ_LUA)


def handles(scope) -> bool:
    """True for the exact path and method, with a token (session callers go through Django)."""
    return (
        scope.get("type") == "http" and scope.get("path") == PATH and scope.get("method") == "POST" and has_token(scope)
    )


def wrap(django_app):
    """`application = ProtocolTypeRouter({"http": fastpath.wrap(django_asgi_app), ...})`."""
    return lean_route(handles, handle, django_app)


def _load_token(key: str):
    from apps.accounts.tokens import find_token  # accounts' token models load after apps are ready

    token = find_token(key)
    if token is None:
        return None
    expires = token.expires_at.timestamp() if token.expires_at else None
    return token, expires


async def _user_for(header: bytes):
    keyword, _, rest = header.decode("latin-1").partition(" ")  # `Token <key>` or `Bearer <key>`
    key = rest.strip()
    if not key:
        raise Reply(
            401, {"detail": f"Authorization header has no token after {keyword!r}."}, [(b"www-authenticate", b"Token")]
        )
    digest = hashlib.sha256(key.encode()).hexdigest()
    hit = reader.CACHE.tokens.get(digest)
    now = time.time()
    if hit is None or time.monotonic() - hit[2] >= reader.CACHE_MAX_AGE:
        loaded = await sync_to_async(_load_token)(key)
        if loaded is None:
            reader.CACHE.tokens.pop(digest, None)
            raise Reply(401, {"detail": "Invalid, expired or revoked token."}, [(b"www-authenticate", b"Token")])
        if len(reader.CACHE.tokens) > reader.CACHE_MAX_ENTRIES:
            reader.CACHE.tokens.clear()
        hit = (*loaded, time.monotonic())
        reader.CACHE.tokens[digest] = hit
    token, expires, _ = hit
    if expires is not None and expires <= now:
        reader.CACHE.tokens.pop(digest, None)
        raise Reply(401, {"detail": "Invalid, expired or revoked token."}, [(b"www-authenticate", b"Token")])
    if not token_allows(token, SCOPES):
        raise Reply(
            403, {"detail": "This token needs the 'features' or 'read' scope; create one on your profile page."}
        )
    return token.user


def _refuse_region(user, meta) -> None:
    view = reader.FeatureView.objects.get(pk=meta.id)
    offline.check_residency(meta.region, actor=user, obj=view, action="online-read")


async def _serve(scope, receive) -> tuple[dict, int | None]:
    header = next((v for k, v in scope.get("headers") or () if k == b"authorization"), b"")
    user = await _user_for(header)
    raw = await read_body(receive, MAX_BODY, f"The request body is over {MAX_BODY} bytes; ask for fewer entities.")
    top_up = await throttle(user.pk)
    started = time.perf_counter()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Reply(400, {"detail": "The body is not valid JSON."}) from None
    try:
        refs, entities, n = reader.parse_request(body)
    except ValidationError as exc:
        raise Reply(400, exc.message_dict) from None
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
                raise Reply(*error_body(exc)) from None
        for meta in metas.values():
            if meta.region != here:
                try:
                    await sync_to_async(_refuse_region)(user, meta)
                except DomainError as exc:
                    raise Reply(*error_body(exc)) from None
        try:
            keys, fields = reader.plan_keys(refs, entities, n, metas)
        except ValidationError as exc:
            raise Reply(400, exc.message_dict) from None
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
    metrics.ONLINE_READ.observe(("lean",), time.perf_counter() - started)
    return out, (user.pk if top_up else None)


async def handle(scope, receive, send) -> None:
    started = time.perf_counter()
    top_up = None
    try:
        (body, top_up), status, headers = await _serve(scope, receive), 200, []
    except Reply as reply:
        status, body, headers = reply.status, reply.body, reply.headers
    except Exception:  # a bug, not the client's fault: JSON like the API's handler, never uvicorn's plain text
        log.exception("online features fast path failed")
        status, body, headers = 500, {"detail": "Internal error; it has been logged."}, []
    await send_json(send, status, body, headers)
    metrics.HTTP.observe((ROUTE, "POST", status), time.perf_counter() - started)
    if top_up is not None:
        await top_up_lease(top_up)
