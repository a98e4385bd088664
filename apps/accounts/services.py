"""Writes for accounts: API tokens and teams. Every change is audited through auditlog."""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import ApiToken, Team
from apps.accounts.tokens import new_key
from apps.core.audit import audit_event
from apps.core.errors import NotFound
from apps.core.names import NAME_RE
from apps.core.permissions import is_platform_admin
from apps.core.realtime import access_changed, token_access_group

VALID_SCOPES = {code for code, _ in ApiToken.SCOPES}


def token_create(
    *,
    user,
    name: str,
    scopes: list[str],
    expires_days: int | None,
    endpoints: list[str] | None = None,
    rate: str = "",
) -> tuple[ApiToken, str]:
    """Create a token and return it with its key; the key is never retrievable again.

    `endpoints` (names) and `rate` ("N/s|m|h|d") apply to the `predict` scope: such a token may
    predict on exactly the endpoints it names, at most at its own rate besides its user's."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name so you can recognise it later."})
    unknown = sorted(set(scopes) - VALID_SCOPES)
    if unknown or not scopes:
        raise ValidationError({"scopes": f"Choose one or more of: {', '.join(sorted(VALID_SCOPES))}."})
    if "metrics" in scopes and not is_platform_admin(user):
        raise ValidationError(
            {"scopes": "Only platform admins' tokens may scrape /metrics (it covers every endpoint)."}
        )
    if "admin" in scopes and not is_platform_admin(user):
        raise ValidationError({"scopes": "Only platform admins' tokens may hold the 'admin' scope."})
    if expires_days is not None and not (1 <= expires_days <= settings.API_TOKEN_MAX_DAYS):
        raise ValidationError({"expires_days": f"Expiry must be between 1 and {settings.API_TOKEN_MAX_DAYS} days."})
    endpoints = sorted(set(endpoints or ()))
    if endpoints and "predict" not in scopes:
        raise ValidationError({"endpoints": "Endpoints apply to the 'predict' scope; add it or name no endpoint."})
    bad = [e for e in endpoints if not isinstance(e, str) or not re.fullmatch(NAME_RE, e)]
    if bad:
        raise ValidationError({"endpoints": f"Not an endpoint name: {bad[0]!r}."})
    rate = (rate or "").strip()
    if rate and not re.fullmatch(r"[1-9][0-9]{0,8}/[smhd]", rate):
        raise ValidationError({"rate": "Write the rate as N/s, N/m, N/h or N/d, for example 600/m."})
    key, prefix, key_hash = new_key()
    expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        prefix=prefix,
        key_hash=key_hash,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        endpoints=endpoints,
        rate=rate,
    )
    return token, key


def token_revoke(*, token: ApiToken, actor) -> ApiToken:
    """Revoke `token` (its owner or a platform admin; anyone else is told it does not exist)."""
    if token.user_id != getattr(actor, "pk", None) and not is_platform_admin(actor):
        raise NotFound("No API token matches the given query.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_event(actor=actor, event="token.revoke", obj=token)
        access_changed([token_access_group(token.pk)])  # sockets opened with it close with 4403
    return token


@transaction.atomic
def team_create(*, name: str, slug: str | None = None, description: str = "", members=()) -> Team:
    slug = slug or slugify(name)
    if not slug:
        raise ValidationError({"name": "A team name needs at least one letter or digit."})
    if Team.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"A team called {slug!r} already exists."})
    group = Group.objects.create(name=f"team:{slug}")
    team = Team.objects.create(slug=slug, name=name, description=description, group=group)
    for user in members:
        user.groups.add(group)
    return team


def team_add_member(*, team: Team, user) -> None:
    user.groups.add(team.group)


def team_remove_member(*, team: Team, user) -> None:
    """Take `user` out of `team`; their open sockets re-check access after commit
    (apps.accounts.signals.recheck_sockets_on_group_removal, which also covers the admin)."""
    user.groups.remove(team.group)
