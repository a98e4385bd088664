"""API tokens (issue 17): the `admin` scope for platform-admin actions, `Authorization: Bearer`
wherever `Token` works (REST across apps, sockets, /metrics), dead tokens refused, and every write
made with a token audited with its user as actor and the token's prefix."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create, token_revoke
from apps.accounts.tokens import find_token
from apps.catalog.models import RegisteredModel
from apps.core.models import AuditEntry

pytestmark = pytest.mark.django_db
POLICY = {"alias": "production", "approver_groups": ["approvers"], "approvals_required": 1}


def client_with(key: str, scheme: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def test_platform_admin_actions_through_a_token_need_the_admin_scope(admin_user, owner):
    from apps.catalog import services as catalog

    catalog.model_create(actor=owner, name="credit-risk")
    body = {**POLICY, "model": "credit-risk"}
    _, plain = token_create(user=admin_user, name="ci", scopes=["read", "write"], expires_days=1)
    # without `admin`, the token acts as an ordinary member of the platform-admins role: the model
    # (someone else's) is invisible to it, and incident webhooks are platform admins' only
    assert client_with(plain).post("/api/v1/gate-policies/", body, format="json").status_code == 404
    webhooks = client_with(plain).get("/api/v1/monitoring/webhooks/")
    assert webhooks.status_code == 403 and "Only platform admins" in webhooks.json()["detail"]

    _, admin_key = token_create(user=admin_user, name="ops", scopes=["read", "write", "admin"], expires_days=1)
    allowed = client_with(admin_key).post("/api/v1/gate-policies/", body, format="json")
    assert allowed.status_code == 201, allowed.content
    assert client_with(admin_key).get("/api/v1/monitoring/webhooks/").status_code == 200
    # what the platform-admins role grants by itself stays: reading the audit trail
    assert client_with(plain).get("/api/v1/audit/").status_code == 200


def test_only_platform_admins_tokens_hold_admin_and_the_narrowed_user_is_never_saved(admin_user, owner):
    with pytest.raises(ValidationError):
        token_create(user=owner, name="sneaky", scopes=["read", "admin"], expires_days=1)
    _, key = token_create(user=admin_user, name="ci", scopes=["read"], expires_days=1)
    narrowed = find_token(key).user
    assert not narrowed.is_superuser
    with pytest.raises(PermissionDenied):
        narrowed.save()
    admin_user.refresh_from_db()
    assert admin_user.is_superuser
    _, admin_key = token_create(user=admin_user, name="ops", scopes=["read", "admin"], expires_days=1)
    assert find_token(admin_key).user.is_superuser


def test_a_metrics_only_token_still_scrapes(admin_user):
    _, key = token_create(user=admin_user, name="prometheus", scopes=["metrics"], expires_days=1)
    assert client_with(key, "Bearer").get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/api/v1/me", "/api/v1/models/", "/api/v1/feature-views/", "/api/v1/experiments/", "/api/v1/promotions/",
     "/api/v1/training/jobs/", "/api/v1/endpoints/", "/api/v1/notifications/"],
)  # fmt: skip
def test_bearer_works_wherever_token_does(owner, path):
    _, key = token_create(user=owner, name="script", scopes=["read"], expires_days=1)
    token_answer = client_with(key, "Token").get(path)
    bearer_answer = client_with(key, "Bearer").get(path)
    assert token_answer.status_code == 200, (path, token_answer.content[:200])
    assert bearer_answer.status_code == 200 and bearer_answer.json() == token_answer.json()
    assert client_with("ptk_nope_nope", "Bearer").get(path).status_code == 401


def test_bearer_writes_and_dead_bearer_tokens_are_refused(owner):
    token, key = token_create(user=owner, name="script", scopes=["read", "write"], expires_days=1)
    assert client_with(key, "Bearer").post("/api/v1/models/", {"name": "by-bearer"}, format="json").status_code == 201
    token.refresh_from_db()
    assert token.last_used_at is not None
    token_revoke(token=token, actor=owner)
    assert client_with(key, "Bearer").get("/api/v1/me").status_code == 401  # at once, despite the caller cache
    expired, expired_key = token_create(user=owner, name="old", scopes=["read"], expires_days=1)
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_with(expired_key, "Bearer").get("/api/v1/me").status_code == 401


def test_bearer_opens_a_socket(owner, monkeypatch):
    from portal.asgi import application

    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    _, key = token_create(user=owner, name="live", scopes=["read"], expires_days=1)

    async def first_message(scheme):
        headers = [(b"authorization", f"{scheme} {key}".encode())]
        communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
        connected, code = await communicator.connect(timeout=5)
        try:
            if not connected:
                return code
            return json.loads((await communicator.receive_output(timeout=5))["text"]).get("type")
        finally:
            await communicator.disconnect()

    assert async_to_sync(first_message)("Bearer") == "subscribed"
    assert async_to_sync(first_message)("Token") == "subscribed"


def test_writes_with_a_token_are_audited_with_its_user_and_prefix(owner):
    token, key = token_create(user=owner, name="nightly", scopes=["read", "write"], expires_days=1)
    response = client_with(key, "Bearer").post("/api/v1/models/", {"name": "audited"}, format="json")
    assert response.status_code == 201
    model = RegisteredModel.objects.get(name="audited")
    entries = AuditEntry.objects.filter(object_pk=str(model.pk), content_type__model="registeredmodel")
    assert entries.exists()
    for entry in entries:
        assert entry.actor == owner and entry.additional_data["token"] == token.prefix
    # nothing written after the request (or by a session) is attributed to the token
    from apps.catalog import services as catalog

    later = catalog.model_create(actor=owner, name="by-service")
    later_entries = AuditEntry.objects.filter(object_pk=str(later.pk), content_type__model="registeredmodel")
    assert later_entries.exists() and all("token" not in (e.additional_data or {}) for e in later_entries)
    from apps.core.audit import verify_chain

    assert verify_chain().ok
