"""Who is calling: users and API tokens cached per process, dropped everywhere when they change.

Every API call and page looked its caller up in the database (the token with its user, or the
session's user), then the user's model permissions (two more queries whenever a role was asked),
then for `/api/v1/me` the groups and teams. Those rows change rarely, so each process keeps what
it read, keyed by a generation counter in Redis: any change to a user, token, group membership,
role permission or team clears this process's copy at once and, after commit, moves a counter
in Redis and publishes on a channel. Each process listens on that channel in one thread, so a
request costs no round trip; while the listener is not subscribed (start-up, a lost
connection) every lookup compares the counter instead, in one pooled round trip. A revoked token
or a deactivated user is refused by this process at once and by every other as soon as the
message arrives (under a millisecond on one host). Without Redis the
cache is bypassed (every lookup reads the database), never trusted past `MAX_AGE_S`.

Each request gets its own model instances built from the cached values: nothing a request sets
on its user (permission caches, attributes) is seen by another.
"""

from __future__ import annotations

import logging
import threading
import time

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import transaction

from apps.core.invalidation import ChannelListener
from apps.core.redis_pool import redis_client

GEN_KEY = "portal:auth:gen"
CHANNEL = "portal:auth:changed"
MAX_AGE_S = 60
MAX_ENTRIES = 10_000
log = logging.getLogger(__name__)


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation: bytes | None = None
        self.users: dict[int, tuple[float, dict, set, set, list]] = {}
        self.tokens: dict[str, tuple[float, dict]] = {}

    def clear(self) -> None:
        with self.lock:
            self.users.clear()
            self.tokens.clear()


CACHE = _Cache()


def _generation_current() -> bool:
    """True when the cached entries may be used. While this process's listener is subscribed to
    the change channel, every change reaches it as a message (no round trip per request);
    otherwise the Redis counter is compared on every lookup."""
    if _listening():
        return True
    try:
        generation = redis_client().get(GEN_KEY) or b"0"
    except Exception as exc:  # Redis down: read the database every time
        log.warning("caller cache bypassed: %s", exc)
        return False
    if generation != CACHE.generation:
        CACHE.clear()
        CACHE.generation = generation
    return True


def bump() -> None:
    """Something a caller's identity depends on changed: clear here now, everywhere after commit."""
    CACHE.clear()
    transaction.on_commit(_bump_everywhere)


def _bump_everywhere() -> None:
    CACHE.clear()
    announce()


def announce() -> None:
    """Tell every process: the counter moves (for lookups that compare it) and a message goes out
    (for processes whose listener is subscribed)."""
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(GEN_KEY)
        pipe.publish(CHANNEL, b"1")
        pipe.execute()
    except Exception:  # entries elsewhere still expire within MAX_AGE_S
        log.exception("could not announce a caller change")


# One thread per process subscribed to CHANNEL: each message (and each (re)subscription, since
# anything may have changed while nobody listened) clears the cache.
_LISTENER = ChannelListener(CHANNEL, lambda: CACHE.clear(), name="caller-cache")


def _listening() -> bool:
    return _LISTENER.listening()


# --- users ---------------------------------------------------------------------------------------


def _user_fields(user) -> dict:
    return {f.attname: getattr(user, f.attname) for f in user._meta.concrete_fields}


def _build_user(fields: dict, user_perms: set, group_perms: set, groups: list, group_ids: list):
    user = get_user_model()(**fields)
    user._state.adding = False
    user._state.db = "default"
    user._user_perm_cache = set(user_perms)
    user._group_perm_cache = set(group_perms)
    user._perm_cache = user_perms | group_perms
    user._portal_groups = list(groups)
    user._portal_group_ids = list(group_ids)  # permissions.restrict matches group rows by id
    return user


def _load_user(user_id) -> tuple[dict, set, set, list, list] | None:
    user = get_user_model()._default_manager.filter(pk=user_id).first()
    if user is None:
        return None
    backend = ModelBackend()
    user_perms = backend.get_user_permissions(user) if user.is_active else set()
    group_perms = backend.get_group_permissions(user) if user.is_active else set()
    rows = list(user.groups.order_by("name").values_list("pk", "name", "team__slug"))
    groups = [(name, team) for _, name, team in rows]
    return _user_fields(user), set(user_perms), set(group_perms), groups, [pk for pk, _, _ in rows]


def user_by_id(user_id):
    """The user with this id (a fresh instance with its permissions and groups known), or None."""
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return None
    return _user(user_id, _generation_current())


def _user(user_id: int, usable: bool):
    hit = CACHE.users.get(user_id) if usable else None
    if hit is None or time.monotonic() - hit[0] >= MAX_AGE_S:
        loaded = _load_user(user_id)
        if loaded is None:
            return None
        hit = (time.monotonic(), *loaded)
        if usable:
            with CACHE.lock:
                if len(CACHE.users) > MAX_ENTRIES:
                    CACHE.users.clear()
                CACHE.users[user_id] = hit
    return _build_user(*hit[1:])


def groups_of(user) -> list[tuple[str, str | None]]:
    """[(group name, team slug or None), ...] of `user`, by name."""
    cached = getattr(user, "_portal_groups", None)
    if cached is not None:
        return cached
    return list(user.groups.order_by("name").values_list("name", "team__slug"))


# --- tokens --------------------------------------------------------------------------------------


def token_by_prefix(prefix: str):
    """The ApiToken row with this prefix and its user, or None. The caller compares the secret's
    hash and checks expiry and revocation on every request, as without the cache."""
    from apps.accounts.models import ApiToken

    usable = _generation_current()
    hit = CACHE.tokens.get(prefix) if usable else None
    if hit is None or time.monotonic() - hit[0] >= MAX_AGE_S:
        token = ApiToken.objects.filter(prefix=prefix).first()
        if token is None:
            return None
        hit = (time.monotonic(), {f.attname: getattr(token, f.attname) for f in ApiToken._meta.concrete_fields})
        if usable:
            with CACHE.lock:
                if len(CACHE.tokens) > MAX_ENTRIES:
                    CACHE.tokens.clear()
                CACHE.tokens[prefix] = hit
    token = ApiToken(**hit[1])
    token._state.adding = False
    token._state.db = "default"
    user = _user(token.user_id, usable)
    if user is None:
        return None
    token.user = user
    return token


class PortalModelBackend(ModelBackend):
    """Django's ModelBackend; the session's user comes from the caller cache."""

    def get_user(self, user_id):
        user = user_by_id(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None
