"""The portal's own routes: me, audit (auditors and platform admins), schema and docs, health,
home, sign-in and the profile's tokens."""

from __future__ import annotations

from tests.access.matrix import LOGIN, AccessMatrix, api_collection, page_collection

SIGNED_IN = api_collection()
AUDIT = dict(auditor=200, admin=200, owner=403, stranger=403, anon=401, no_scope_token=403)
# /healthz is anonymous; it answers 503 when a dependency (the broker) is down, which in a test
# run depends on the machine, not on access: either answer proves it is neither 401 nor a redirect.
HEALTH = {200, 503}


def own_token(owner, team) -> dict:
    from apps.accounts.services import token_create

    token, _ = token_create(user=owner, name="to-revoke", scopes=["read"], expires_days=1)
    return {"token": token.pk}


class TestCoreApiAccess(AccessMatrix):
    rows = {
        ("GET", "/api/v1/me"): SIGNED_IN,
        ("GET", "/api/v1/audit/"): AUDIT,
        ("GET", "/api/v1/audit/verify"): AUDIT,
        ("GET", "/api/v1/schema/"): SIGNED_IN,
        ("GET", "/api/v1/docs/"): SIGNED_IN,
        ("GET", "/api/v1/redoc/"): SIGNED_IN,
    }


class TestCorePageAccess(AccessMatrix):
    make = staticmethod(own_token)
    rows = {
        ("GET", "/healthz"): dict(anon=HEALTH, owner=HEALTH),
        ("GET", "/favicon.ico"): dict(anon=200, owner=200),
        ("GET", "/"): page_collection(),
        ("GET", "/audit/"): dict(auditor=200, admin=200, owner=403, stranger=403, anon=LOGIN),
        ("GET", "/accounts/login/"): dict(anon=200, owner=302),
        ("POST", "/accounts/login/"): dict(
            anon=302, body={"username": "stranger", "password": "correct-horse-battery-staple"}
        ),
        ("POST", "/accounts/logout/"): dict(owner=302, anon=302),
        ("GET", "/accounts/profile/"): page_collection(),
        ("POST", "/accounts/profile/"): page_collection(
            302, body={"name": "nightly", "scopes": ["read"], "expires_days": 30}
        ),
        # someone else's token is not found, whoever asks (platform admins revoke in the admin site)
        ("POST", "/accounts/tokens/{token}/revoke"): dict(owner=302, viewer=404, stranger=404, admin=404, anon=LOGIN),
    }
