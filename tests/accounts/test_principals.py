"""The caller cache (apps/accounts/principals.py): users and tokens are read once per process and
dropped everywhere as soon as they change, so a revoked token or a deactivated user is refused on
the next request, in this process and in every other."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import principals, roles
from apps.accounts.models import ApiToken
from apps.accounts.services import team_add_member, token_create, token_revoke
from apps.core.redis_pool import redis_client
from tests.conftest import api_client_for


def _me(client):
    return client.get("/api/v1/me")


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_warm_caller_costs_no_query(owner):
    client = api_client_for(owner)
    assert _me(client).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        body = _me(client).json()
    assert len(queries) == 0
    assert body["username"] == owner.username and roles.ML_ENGINEERS in body["roles"]


def test_a_revoked_token_is_refused_at_once(owner):
    token, key = token_create(user=owner, name="t", scopes=["read"], expires_days=1)
    client = _client(key)
    assert _me(client).status_code == 200
    token_revoke(token=token, actor=owner)
    assert _me(client).status_code == 401


def test_a_deactivated_user_is_refused_at_once(owner):
    client = api_client_for(owner)
    assert _me(client).status_code == 200
    owner.is_active = False
    owner.save()
    assert _me(client).status_code == 401


def test_roles_and_teams_follow_membership(stranger, team):
    client = api_client_for(stranger)
    assert team.slug not in _me(client).json()["teams"]
    team_add_member(team=team, user=stranger)
    assert team.slug in _me(client).json()["teams"]
    stranger.groups.add(Group.objects.get(name=roles.AUDITORS))
    assert roles.AUDITORS in _me(client).json()["roles"]


@pytest.mark.parametrize("listening", [True, False], ids=["listener", "counter"])
def test_another_process_change_reaches_this_one(owner, listening, monkeypatch):
    """A change made elsewhere sends no signal here: only Redis tells, by a message to the
    listener or, while it is not subscribed, through the counter compared on each lookup."""
    if listening:
        assert principals._LISTENER.ready.wait(5), "the listener did not subscribe"
    else:
        monkeypatch.setattr(principals, "_listening", lambda: False)
    token, key = token_create(user=owner, name="t", scopes=["read"], expires_days=1)
    client = _client(key)
    assert _me(client).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())  # no signal: as from another process
    assert _me(client).status_code == 200  # this process still trusts its copy ...
    principals.announce()  # ... until the other process's commit announces the change
    deadline = time.monotonic() + 5
    while _me(client).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _me(client).status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_bumps_the_generation(owner):
    before = int(redis_client().get(principals.GEN_KEY) or 0)
    token, _ = token_create(user=owner, name="t", scopes=["read"], expires_days=1)
    token_revoke(token=token, actor=owner)
    assert int(redis_client().get(principals.GEN_KEY) or 0) > before


def test_without_redis_the_database_is_read_every_time(owner, monkeypatch):
    client = api_client_for(owner)
    assert _me(client).status_code == 200

    def down(*_args, **_kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(principals, "_listening", lambda: False)  # the listener's connection is gone too
    monkeypatch.setattr(principals, "redis_client", lambda: type("R", (), {"get": down})())
    with CaptureQueriesContext(connection) as queries:
        assert _me(client).status_code == 200
    assert len(queries) >= 1
