from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


def test_token_is_stored_hashed_and_authenticates(owner):
    token, key = token_create(user=owner, name="script", scopes=["read"], expires_days=30)
    assert key.startswith("ptk_") and key not in token.key_hash
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    body = client.get("/api/v1/me").json()
    assert body["username"] == "owner" and body["token_scopes"] == ["read"]
    assert "ml-engineers" in body["roles"]
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("state", ["revoked", "expired", "garbage"])
def test_dead_tokens_get_401(owner, state):
    token, key = token_create(user=owner, name="script", scopes=["read"], expires_days=1)
    if state == "revoked":
        token.revoked_at = timezone.now()
        token.save()
    elif state == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    else:
        key = key[:-3] + "xyz"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_read_scope_cannot_write(owner):
    client = api_client_for(owner, scopes=["read"])
    response = client.post("/api/v1/audit/verify", {})
    assert response.status_code == 403
    assert "write" in response.json()["detail"]


def test_token_validation_errors(owner):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as err:
        token_create(user=owner, name="", scopes=["root"], expires_days=10_000)
    assert "name" in err.value.message_dict


def test_token_create_command(owner):
    out, err = StringIO(), StringIO()
    call_command(
        "token_create", "owner", "--scope", "read", "--scope", "predict", "--expires-days", "7", stdout=out, stderr=err
    )
    key = out.getvalue().strip()
    assert key.startswith("ptk_")
    token = ApiToken.objects.get(user=owner)
    assert token.scopes == ["predict", "read"]
    assert (token.expires_at - timezone.now()).days in (6, 7)


def test_profile_creates_shows_once_and_revokes(owner, stranger):
    client = Client()
    client.force_login(owner)
    page = client.post(
        "/accounts/profile/", {"name": "ci", "scopes": ["read", "write"], "expires_days": 30}, follow=True
    )
    assert page.status_code == 200
    token = ApiToken.objects.get(user=owner)
    assert b"ptk_" + token.prefix.encode() in page.content
    again = client.get("/accounts/profile/")
    assert b"shown once" not in again.content
    # someone else's token is not found
    other = Client()
    other.force_login(stranger)
    assert other.post(f"/accounts/tokens/{token.pk}/revoke").status_code == 404
    client.post(f"/accounts/tokens/{token.pk}/revoke")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_profile_form_shows_inline_errors(owner):
    client = Client()
    client.force_login(owner)
    page = client.post("/accounts/profile/", {"name": "", "expires_days": 0})
    assert page.status_code == 200
    assert b"invalid-feedback" in page.content
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_profile_page_queries_do_not_grow_with_tokens(owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.services import token_create
    from tests.conftest import page_client_for

    client = page_client_for(owner)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/accounts/profile/").status_code == 200
        return len(ctx.captured_queries)

    for i in range(5):
        token_create(user=owner, name=f"t{i}", scopes=["read"], expires_days=1)
    few = count()
    for i in range(45):
        token_create(user=owner, name=f"u{i}", scopes=["read"], expires_days=None)
    assert count() == few
