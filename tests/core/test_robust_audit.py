"""Every audit entry names its actor (issue 12): session, token, lean ASGI path, Celery task, command.

A token caller was recorded with no actor: auditlog's middleware reads `request.user` before DRF
authenticates the token inside the view (apps.core.audit.attribute_request_to fixes that)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create
from apps.core.audit import system_user
from apps.core.models import AuditEntry
from apps.experiments.models import Experiment
from tests.conftest import api_client_for, make_user, page_client_for

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def _created(model, pk) -> AuditEntry:
    return AuditEntry.objects.get(
        content_type__model=model._meta.model_name, object_pk=str(pk), action=AuditEntry.Action.CREATE
    )


def test_a_token_write_is_audited_to_the_tokens_user(owner):
    response = api_client_for(owner).post("/api/v1/experiments/", {"name": "by-token"}, format="json")
    assert response.status_code == 201, response.content
    entry = _created(Experiment, response.json()["id"])
    assert entry.actor == owner and entry.actor_email == owner.email


def test_a_session_write_is_audited_to_the_signed_in_user(owner):
    response = page_client_for(owner).post(
        "/api/v1/experiments/", {"name": "by-session"}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert _created(Experiment, response.json()["id"]).actor == owner


def test_a_command_is_audited_to_the_system_user(owner, capsys):
    call_command("token_create", "owner", "--scope", "read", "--name", "from-cli")
    token = ApiToken.objects.get(name="from-cli")
    assert _created(ApiToken, token.pk).actor == system_user()


def _pii_view(owner, root):
    from apps.features import services

    entity = services.entity_create(actor=owner, name="audit-e", join_keys=[{"name": "customer_id", "dtype": "int64"}])
    view = services.feature_view_create(
        actor=owner, name="audit-view", entity=entity, ttl_seconds=0,
        features=[{"name": "balance", "dtype": "float64"}, {"name": "email", "dtype": "string", "pii": True}],
    )  # fmt: skip
    rows = [{"customer_id": 1, "event_timestamp": "2024-05-01T00:00:00Z", "balance": 1.0, "email": "a@example.com"}]
    services.feature_view_ingest(view=view, actor=owner, data=rows)
    job = services.feature_view_materialize(
        view=view, actor=owner, start=T0 - timedelta(days=1), end=T0 + timedelta(days=1)
    )
    assert services.materialization_run(job_id=job.pk).state == "succeeded"
    return view


def test_an_unmasked_read_on_the_lean_path_is_audited_to_the_tokens_user(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    """The lean ASGI path writes nothing but its PII-read audit entries (and `last_used_at` by
    update); those name the token's user."""
    from apps.features import fastpath, nearcache, online
    from apps.features.reader import CACHE

    settings.FEATURE_STORE_ROOT = tmp_path / "features"
    client = online.client()
    for key in client.scan_iter(match=f"{online.PREFIX}*", count=1000):
        client.delete(key)
    CACHE.clear()
    nearcache.evict(None)
    steward = make_user("lean-steward", "ml-engineers", "data-stewards")
    _pii_view(steward, tmp_path)
    _, key = token_create(user=steward, name="lean", scopes=["features"], expires_days=1)
    body = json.dumps({"features": ["audit-view:email"], "entities": {"customer_id": [1]}}).encode()
    scope = {"type": "http", "path": fastpath.PATH, "method": "POST", "client": ("127.0.0.1", 5000),
             "headers": [(b"authorization", f"Token {key}".encode()), (b"content-type", b"application/json")]}  # fmt: skip
    messages, sent = [{"type": "http.request", "body": body}], []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async_to_sync(fastpath.handle)(scope, receive, send)
    CACHE.clear()
    assert sent[0]["status"] == 200, sent[1]["body"]
    entry = AuditEntry.objects.get(additional_data__event="features.pii_read")
    assert entry.actor == steward


def test_a_task_is_audited_to_the_actor_that_enqueued_it(owner):
    """The publishing process puts its actor in the message headers (apps/core/signals.py); the
    worker builds `task.request` from those headers and acts as that user for the task's changes.
    (The token request's actor is the one `attribute_request_to` named, as the test above shows.)"""
    from types import SimpleNamespace

    from celery.app.task import Context

    from apps.accounts.services import team_create
    from apps.core.audit import acting_as
    from apps.core.signals import attach_actor, enter_actor, leave_actor

    headers: dict = {"task": "accounts.example", "id": "t-1"}
    with acting_as(owner):
        attach_actor(headers=headers)
    assert headers["actor_id"] == owner.pk
    enter_actor(task_id="t-1", task=SimpleNamespace(request=Context(headers)))
    try:
        team = team_create(name="By task", slug="by-task")
    finally:
        leave_actor(task_id="t-1")
    assert _created(type(team), team.pk).actor == owner
    enter_actor(task_id="t-2", task=SimpleNamespace(request=Context({"id": "t-2"})))  # nobody enqueued it
    try:
        team = team_create(name="By schedule", slug="by-schedule")
    finally:
        leave_actor(task_id="t-2")
    assert _created(type(team), team.pk).actor == system_user()
