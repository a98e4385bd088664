"""Reads for accounts: a user's own tokens and teams (tokens are never shared: another's is 404)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import ApiToken
from apps.core.errors import NotFound
from apps.core.permissions import is_active_user


def tokens_of(user) -> QuerySet[ApiToken]:
    """The user's own tokens, newest first."""
    if not is_active_user(user):
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")


def token_for(user, pk: int) -> ApiToken:
    """One of the user's own tokens; anyone else's reads as missing."""
    token = tokens_of(user).filter(pk=pk).first()
    if token is None:
        raise NotFound("No API token matches the given query.")
    return token
