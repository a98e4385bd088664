"""Shared fixtures: personas (owner, collaborator, stranger, approver, admin) and API clients."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from apps.accounts import roles
from apps.accounts.services import team_create, token_create


def make_user(username: str, *role_names: str, **extra):
    user = get_user_model().objects.create_user(
        username=username, password="correct-horse-battery-staple", email=f"{username}@example.com", **extra
    )
    if role_names:
        user.groups.add(*Group.objects.filter(name__in=role_names))
    return user


@pytest.fixture
def owner(db):
    return make_user("owner", roles.ML_ENGINEERS, roles.DATA_STEWARDS)


@pytest.fixture
def collaborator(db):
    return make_user("collaborator", roles.ML_ENGINEERS)


@pytest.fixture
def stranger(db):
    """Same roles as the owner, but nothing has been shared with them."""
    return make_user("stranger", roles.ML_ENGINEERS, roles.DATA_STEWARDS)


@pytest.fixture
def approver(db):
    return make_user("approver", roles.APPROVERS)


@pytest.fixture
def auditor(db):
    return make_user("auditor", roles.AUDITORS)


@pytest.fixture
def admin_user(db):
    return make_user("platformadmin", roles.PLATFORM_ADMINS, is_staff=True, is_superuser=True)


@pytest.fixture
def team(db, owner, collaborator):
    return team_create(name="Risk Analytics", slug="risk", members=[owner, collaborator])


def api_client_for(user, scopes=("read", "write", "predict", "features")) -> APIClient:
    """An API client that authenticates like a script: with a real token."""
    _, key = token_create(user=user, name="test", scopes=list(scopes), expires_days=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def api_owner(owner):
    return api_client_for(owner)


@pytest.fixture
def api_collaborator(collaborator):
    return api_client_for(collaborator)


@pytest.fixture
def api_stranger(stranger):
    return api_client_for(stranger)


@pytest.fixture
def api_admin(admin_user):
    return api_client_for(admin_user)
