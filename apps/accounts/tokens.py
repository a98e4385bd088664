"""API token keys: `ptk_<prefix>_<secret>`. The prefix finds the row, the secret is hashed."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from auditlog.context import auditlog_value
from django.core.cache import caches
from django.utils import timezone

from apps.core.permissions import is_platform_admin, token_allows

KEY_PREFIX = "ptk"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """Return (full key, prefix, hash of the secret)."""
    prefix = secrets.token_hex(5)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{prefix}_{secret}", prefix, hash_secret(secret)


def parse_key(key: str) -> tuple[str, str] | None:
    parts = key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def find_token(key: str):
    """The active ApiToken for `key`, or None. Constant-time comparison of the secret."""
    from apps.accounts.principals import token_by_prefix  # accounts' models load after start-up

    parsed = parse_key(key)
    if parsed is None:
        return None
    prefix, secret = parsed
    token = token_by_prefix(prefix)  # the row, cached per process until any token or user changes
    if token is None or not hmac.compare_digest(token.key_hash, hash_secret(secret)):
        return None
    if not token.is_active or not token.user.is_active:
        return None
    _touch(token)
    if is_platform_admin(token.user) and not _keeps_admin_standing(token.scopes):
        token.user = _without_admin_standing(token.user)
    return token


def _keeps_admin_standing(scopes) -> bool:
    """Platform-admin actions through a token need the `admin` scope. A token holding `metrics`
    alone reaches nothing but /metrics (every other route needs read, write, predict or
    features), where its user's admin standing is what is asked, so it keeps it."""
    return "admin" in scopes or set(scopes) <= {"metrics"}


def _without_admin_standing(user):
    """The token's user as an ordinary member of their roles: not a superuser, permissions
    recomputed on demand from their own and their groups' grants. A fresh instance per request
    (apps/accounts/principals.py), flagged so that it can never be saved (accounts.signals)."""
    user.is_superuser = False
    user._portal_token_narrowed = True
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
    return user


# --- which token a request runs on, for the audit trail (apps.accounts.signals.name_the_token) ---
# Kept in auditlog's per-request context (set by its middleware for every request), dropped when
# the request finishes, so nothing written outside the request is attributed to the token.
_CONTEXT_KEY = "portal_token"


def request_token_remember(token) -> None:
    try:
        auditlog_value.get()[_CONTEXT_KEY] = token.prefix
    except LookupError:  # outside a request (a task, a command): nothing to name
        return


def request_token_prefix() -> str | None:
    try:
        return auditlog_value.get().get(_CONTEXT_KEY)
    except LookupError:
        return None


def request_token_forget() -> None:
    try:
        auditlog_value.get().pop(_CONTEXT_KEY, None)
    except LookupError:
        return


def authenticate_token(key: str, required_scope: str | None = None):
    token = find_token(key)
    if token is None:
        return None
    if required_scope and not token_allows(token, required_scope):
        return None
    return token.user


def _touch(token) -> None:
    """Record last use at most once a minute per token, so hot paths don't write every call."""
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    marker = f"token-touch:{token.prefix}"
    local = caches["local"]
    if local.get(marker):
        return
    local.set(marker, 1, timeout=LAST_USED_RESOLUTION.total_seconds())
    type(token).objects.filter(pk=token.pk).update(last_used_at=now)
