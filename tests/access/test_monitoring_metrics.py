"""Who may scrape `/metrics` (shared/API.md): platform admins by session, or a `metrics` token of a
platform admin; anonymous 401, everyone else 403 (a token's scope never widens its user's rights)."""

from __future__ import annotations

import pytest

from apps.accounts.models import ApiToken
from apps.accounts.tokens import new_key
from tests.access.matrix import AccessMatrix

pytestmark = pytest.mark.django_db


class TestMetricsAccess(AccessMatrix):
    """Sessions (the matrix's page personas): only the platform admin."""

    rows = {
        ("GET", "/metrics"): dict(admin=200, owner=403, stranger=403, auditor=403, viewer=403, anon=401),
    }


def token_for(user, scopes: list[str]) -> str:
    """A token row with `scopes` as given (the accounts app decides which scopes a user may create)."""
    key, prefix, key_hash = new_key()
    ApiToken.objects.create(user=user, name="scraper", prefix=prefix, key_hash=key_hash, scopes=scopes)
    return key


def revoke(key: str) -> None:
    from django.utils import timezone

    token = ApiToken.objects.get(prefix=key.split("_")[1])
    token.revoked_at = timezone.now()
    token.save()  # save(), not update(): the token cache listens for it


@pytest.mark.parametrize(
    ("who", "scopes", "scheme", "expected"),
    [
        ("admin", ["metrics"], "Token", 200),
        ("admin", ["metrics"], "Bearer", 200),
        ("admin", ["read", "write", "features", "predict", "admin", "metrics"], "Token", 200),
        ("admin", ["read"], "Token", 403),
        ("admin", ["admin"], "Token", 403),
        ("owner", ["metrics"], "Token", 403),
        ("owner", ["read"], "Token", 403),
    ],
)
def test_tokens(client, admin_user, owner, who, scopes, scheme, expected):
    key = token_for(admin_user if who == "admin" else owner, scopes)
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"{scheme} {key}").status_code == expected


def test_no_bad_or_revoked_credentials_are_401(client, admin_user):
    response = client.get("/metrics")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token ptk_nope_nope").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token ").status_code == 401
    key = token_for(admin_user, ["metrics"])
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    revoke(key)
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_only_get(client, admin_user):
    client.force_login(admin_user)
    assert client.post("/metrics").status_code == 405
