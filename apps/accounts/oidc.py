"""Single sign-on with OpenID Connect: the provider's endpoints, the authentication backend, and the
mapping of the provider's groups to portal roles and teams (issue 17; settings in portal/settings/,
"Single sign-on", and docs/SSO.md).

mozilla-django-oidc runs the authorization-code flow; this module decides who signs in:

- the account is the one whose username is the `OIDC_USERNAME_CLAIM` claim, created on first
  sign-in (unusable password: SSO users never sign in with one) unless `OIDC_CREATE_USER` is off;
  a local account (one with a password) of that name is not taken over unless
  `OIDC_LINK_LOCAL_USERS`, and a deactivated account stays refused;
- at every sign-in the roles and teams named in `OIDC_ROLE_MAP` / `OIDC_TEAM_MAP` follow the
  groups the provider asserts now: mapped ones are granted, mapped ones no longer asserted are
  removed, anything the maps do not name (and superuser or staff status) is never touched; each
  change and the sign-in itself are audited;
- the ID token must come from the configured issuer and name this portal's client.

Endpoints not set explicitly come from the provider's discovery document, read at the first
sign-in (not at start-up: a provider that is down never stops the portal) and kept for an hour.
Nothing here runs for a password sign-in: the backend answers only the callback's call.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from apps.accounts.models import Team
from apps.accounts.principals import PortalModelBackend
from apps.accounts.roles import ROLES
from apps.core.audit import audit_event, system_user

log = logging.getLogger(__name__)
DISCOVERY_TTL_S = 3600
SESSION_AUTH_METHOD = "auth_method"  # request.session[...] == "oidc" after an SSO sign-in


NOT_VERIFIED = (
    "The answer from {provider} could not be verified, so you were not signed in. "
    "Start again; ask a platform admin if it keeps failing."
)


class SsoFailure(Exception):
    """A sign-in through the provider that cannot go on; the message is shown on the sign-in page."""


@dataclasses.dataclass(frozen=True)
class Provider:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str


_discovered: dict[str, tuple[float, dict]] = {}
_discovery_lock = threading.Lock()


def provider_name() -> str:
    return settings.OIDC_PROVIDER_NAME


def provider() -> Provider:
    """The provider's endpoints: explicit settings first, the discovery document for the rest."""
    explicit = {
        "authorization_endpoint": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "token_endpoint": settings.OIDC_OP_TOKEN_ENDPOINT,
        "userinfo_endpoint": settings.OIDC_OP_USER_ENDPOINT,
        "jwks_uri": settings.OIDC_OP_JWKS_ENDPOINT,
    }
    document = {} if all(explicit.values()) else _discovery(settings.OIDC_OP_DISCOVERY_URL)
    issuer = settings.OIDC_ISSUER or str(document.get("issuer") or "").rstrip("/")
    if settings.OIDC_ISSUER and document.get("issuer") and str(document["issuer"]).rstrip("/") != issuer:
        raise SsoFailure(
            f"{provider_name()} is misconfigured: its discovery document names the issuer "
            f"{document['issuer']!r}, not OIDC_ISSUER {issuer!r}. Ask an operator to check OIDC_ISSUER."
        )
    found = {key: value or str(document.get(key) or "") for key, value in explicit.items()}
    needed = [
        k for k, v in found.items() if not v and (k != "jwks_uri" or not settings.OIDC_RP_SIGN_ALGO.startswith("HS"))
    ]
    if needed:
        raise SsoFailure(
            f"{provider_name()} does not announce its {', '.join(needed)}; ask an operator to set the "
            "matching OIDC_OP_*_ENDPOINT variables."
        )
    return Provider(issuer=issuer, **found)


def _discovery(url: str) -> dict:
    now = time.monotonic()
    with _discovery_lock:
        hit = _discovered.get(url)
    if hit is not None and now - hit[0] < DISCOVERY_TTL_S:
        return hit[1]
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except (requests.RequestException, ValueError) as exc:
        log.warning("oidc discovery at %s failed: %s", url, exc)
        raise SsoFailure(unreachable()) from exc
    with _discovery_lock:
        _discovered[url] = (now, document)
    return document


def unreachable() -> str:
    return (
        f"{provider_name()} cannot be reached right now, so single sign-on is not possible. "
        "Try again in a few minutes, or ask a platform admin if it keeps failing."
    )


def claim_groups(claims: dict) -> list[str]:
    """The groups the provider asserts: a list of names, or one name; absent means none."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(g) for g in value if isinstance(g, str | int)]
    return []


def _mapped(mapping: dict, groups: list[str]) -> tuple[set[str], set[str]]:
    """(every name the map manages, the names the asserted groups map to)."""
    managed = {name for names in mapping.values() for name in names}
    wanted = {name for group in groups for name in mapping.get(group, ())}
    return managed, wanted


def sso_access_sync(*, user, groups: list[str], request=None) -> dict[str, list[str]]:
    """Make `user`'s mapped roles and teams follow `groups`; audited with the system as actor.

    Roles and teams the maps do not name are left alone, so roles given in the portal survive."""
    unknown = sorted({r for roles in settings.OIDC_ROLE_MAP.values() for r in roles} - set(ROLES))
    if unknown:
        log.error("OIDC_ROLE_MAP names unknown roles: %s", ", ".join(unknown))
        raise SsoFailure(
            f"Single sign-on is misconfigured: OIDC_ROLE_MAP names {', '.join(unknown)}, which "
            f"{'is not a portal role' if len(unknown) == 1 else 'are not portal roles'} "
            f"(the roles are {', '.join(ROLES)}). Ask an operator to correct it."
        )
    changes: dict[str, list[str]] = {"roles_granted": [], "roles_removed": [], "teams_joined": [], "teams_left": []}
    managed, wanted = _mapped(settings.OIDC_ROLE_MAP, groups)
    role_groups = {g.name: g for g in Group.objects.filter(name__in=managed)}
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    actor = None
    for name in sorted((wanted - current) | (current & (managed - wanted))):
        group = role_groups.get(name)
        if group is None:  # the role exists in code but migrate has not created its group yet
            raise SsoFailure(f"The portal role {name!r} is not set up yet; ask an operator to run migrate.")
        granted = name in wanted
        (user.groups.add if granted else user.groups.remove)(group)
        changes["roles_granted" if granted else "roles_removed"].append(name)
        actor = actor or system_user()
        audit_event(
            actor=actor,
            event="role.grant" if granted else "role.revoke",
            obj=user,
            request=request,
            data={
                "role": name,
                "source": "oidc",
                "groups": sorted(g for g in groups if name in settings.OIDC_ROLE_MAP.get(g, ())),
            },
        )
    managed, wanted = _mapped(settings.OIDC_TEAM_MAP, groups)
    teams = {t.slug: t for t in Team.objects.filter(slug__in=managed).select_related("group")}
    for slug in sorted(managed - set(teams)):
        log.warning("OIDC_TEAM_MAP names team %r, which does not exist", slug)
    in_teams = set(user.groups.filter(team__slug__in=list(teams)).values_list("team__slug", flat=True))
    for slug in sorted(((set(teams) & wanted) - in_teams) | (in_teams - wanted)):
        joined = slug in wanted
        (user.groups.add if joined else user.groups.remove)(teams[slug].group)
        changes["teams_joined" if joined else "teams_left"].append(slug)
        actor = actor or system_user()
        audit_event(
            actor=actor,
            event="team.join" if joined else "team.leave",
            obj=user,
            request=request,
            data={"team": slug, "source": "oidc"},
        )
    return changes


class PortalOIDCBackend(OIDCAuthenticationBackend):
    """Answers only the SSO callback (which passes a nonce); password sign-ins never reach the
    provider. Sessions it starts load their user as PortalModelBackend does (the caller cache,
    deactivated users refused). It grants no permissions itself: the other backends answer those."""

    def __init__(self, *args, **kwargs):
        # The parent reads the provider's endpoints here; Django builds every backend for every
        # authenticate() and session lookup, so they are read only when a callback is handled.
        self.UserModel = get_user_model()

    def authenticate(self, request, **kwargs):
        if request is None or "nonce" not in kwargs or not settings.OIDC_ENABLED:
            return None
        endpoints = provider()
        self.issuer = endpoints.issuer
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = endpoints.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = endpoints.jwks_uri or None
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        try:
            return super().authenticate(request, **kwargs)
        except SsoFailure:
            raise
        except requests.HTTPError as exc:  # the provider answered, with a refusal (a bad or used code)
            log.warning("oidc provider refused: %s", str(exc)[:500])
            raise SsoFailure(
                f"{provider_name()} refused to complete the sign-in. Start again; ask a platform admin "
                "if it keeps failing."
            ) from exc
        except requests.RequestException as exc:
            log.warning("oidc provider call failed: %s", str(exc)[:500])
            raise SsoFailure(unreachable()) from exc
        except (SuspiciousOperation, jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            log.warning("oidc answer refused: %s: %s", type(exc).__name__, str(exc)[:500])
            raise SsoFailure(NOT_VERIFIED.format(provider=provider_name())) from exc

    def retrieve_matching_jwk(self, token):
        """The parent needs a `kid` in the token's header; OpenID Connect Core 10.1 lets a provider
        with a single signing key leave it out, and then that one key must verify the token."""
        header = jwt.get_unverified_header(token)
        if "kid" in header:
            return super().retrieve_matching_jwk(token)
        response = requests.get(
            self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL
        )
        response.raise_for_status()
        alg = header.get("alg")
        keys = [k for k in response.json().get("keys", []) if k.get("use", "sig") == "sig" and k.get("alg", alg) == alg]
        if len(keys) != 1:
            raise SuspiciousOperation("The ID token names no key and the provider has not exactly one.")
        return jwt.PyJWK(keys[0], algorithm=alg)

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims with the userinfo endpoint's over them (some providers put the
        groups in one, some in the other); both must be about the same subject."""
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        wrong = ""
        if self.OIDC_RP_CLIENT_ID not in audiences:
            wrong = f"ID token audience {audience!r} is not this client"
        elif self.issuer and str(payload.get("iss", "")).rstrip("/") != self.issuer:
            wrong = f"ID token issuer {payload.get('iss')!r} is not OIDC_ISSUER {self.issuer!r}"
        userinfo = {} if wrong else super().get_userinfo(access_token, id_token, payload)
        if not wrong and (not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub")):
            wrong = "the userinfo subject differs from the ID token's"
        if wrong:
            log.warning("oidc answer refused: %s", wrong)
            raise SsoFailure(NOT_VERIFIED.format(provider=provider_name()))
        return {**payload, **userinfo}

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        claim = settings.OIDC_USERNAME_CLAIM
        username = claims.get(claim)
        if not isinstance(username, str) or not username.strip() or len(username) > 150:
            raise SsoFailure(
                f"{provider_name()} did not send a usable {claim!r} claim, which names your portal account. "
                "Ask a platform admin to check OIDC_USERNAME_CLAIM."
            )
        with transaction.atomic():
            user = self.UserModel.objects.select_for_update().filter(username=username.strip()).first()
            created = user is None
            if created:
                if not settings.OIDC_CREATE_USER:
                    raise SsoFailure(f"There is no portal account for {username!r}. Ask a platform admin to create it.")
                user = self.UserModel.objects.create_user(username.strip())  # no password: unusable
            elif not user.is_active:
                raise SsoFailure("This portal account is deactivated. Ask a platform admin if you need access.")
            elif user.has_usable_password() and not settings.OIDC_LINK_LOCAL_USERS:
                raise SsoFailure(
                    f"The portal account {username!r} signs in with a password, not through {provider_name()}. "
                    "Use the form above, or ask a platform admin to switch the account to single sign-on."
                )
            self.update_user(user, claims)
            groups = claim_groups(claims)
            changes = sso_access_sync(user=user, groups=groups, request=self.request)
            audit_event(
                actor=user,
                event="login.sso",
                obj=user,
                request=self.request,
                data={"issuer": self.issuer, "sub": str(claims.get("sub", ""))[:255], "created": created, **changes},
            )
        return user

    def update_user(self, user, claims):
        fields = {"email": ("email", 254), "first_name": ("given_name", 150), "last_name": ("family_name", 150)}
        changed = []
        for field, (claim, limit) in fields.items():
            value = claims.get(claim)
            if isinstance(value, str) and value[:limit] != getattr(user, field):
                setattr(user, field, value[:limit])
                changed.append(field)
        if changed:
            user.save(update_fields=changed)
        return user

    def get_user(self, user_id):
        return PortalModelBackend.get_user(self, user_id)

    # Permissions come from the portal's own backends; answering them here would count twice.
    def get_user_permissions(self, user_obj, obj=None):
        return set()

    def get_group_permissions(self, user_obj, obj=None):
        return set()

    def get_all_permissions(self, user_obj, obj=None):
        return set()

    def has_perm(self, user_obj, perm, obj=None):
        return False

    def has_module_perms(self, user_obj, app_label):
        return False
