"""Single sign-on against a real OpenID Connect provider process (oidc-provider-mock over HTTP).

The provider runs as its own process on a free port. A test sets a subject's claims at the
provider (`PUT /users/<sub>`), starts the sign-in with the portal's test client, answers the
provider's authorization form with `requests` as a browser would, and brings the redirect back to
the portal's callback, where the portal exchanges the code with the provider over HTTP, checks
the ID token against the provider's keys, reads userinfo, and signs the user in.
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client

from apps.accounts import oidc
from apps.accounts.roles import APPROVERS, AUDITORS, ML_ENGINEERS, user_roles
from apps.accounts.services import team_create
from apps.core.embedded_redis import free_port
from apps.core.models import AuditEntry
from tests.conftest import ROOT, _die_with_parent, _stop, make_user, wait_until_up

pytestmark = pytest.mark.django_db
BACKEND = "apps.accounts.oidc.PortalOIDCBackend"
ROLE_MAP = {"mlops-approvers": (APPROVERS,), "mlops-engineers": (ML_ENGINEERS,), "ds-leads": (ML_ENGINEERS,)}


@pytest.fixture(scope="module")
def provider_url(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env={**os.environ, "NO_COLOR": "1"}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_until_up(
        process,
        lambda: requests.get(f"{base}/.well-known/openid-configuration", timeout=2).raise_for_status(),
        log,
        "OIDC provider",
    )
    yield base
    _stop(process)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


@pytest.fixture
def sso(settings, provider_url):
    """The portal configured for the provider, as the environment variables would configure it."""
    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER = provider_url
    settings.OIDC_OP_DISCOVERY_URL = f"{provider_url}/.well-known/openid-configuration"
    settings.OIDC_RP_CLIENT_ID = "portal"
    settings.OIDC_RP_CLIENT_SECRET = "portal-test-secret"
    settings.OIDC_PROVIDER_NAME = "Corp ID"
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.OIDC_TEAM_MAP = {"risk-analysts": ("risk",)}
    settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, BACKEND]
    return settings


def claims(username: str, *groups: str, **extra) -> dict:
    return {
        "preferred_username": username,
        "email": f"{username}@corp.example",
        "given_name": username.title(),
        "family_name": "Example",
        "groups": list(groups),
        **extra,
    }


def authorize(client: Client, provider_url: str, sub: str, user_claims: dict, *, start: str = "", action=None):
    """Start at the portal, answer the provider's form; returns the callback path the browser gets."""
    requests.put(f"{provider_url}/users/{sub}", json=user_claims, timeout=10).raise_for_status()
    response = client.get(f"/accounts/oidc/authenticate/{start}")
    assert response.status_code == 302, response.content[:300]
    location = response["Location"]
    assert location.startswith(f"{provider_url}/oauth2/authorize?"), location
    form = {"sub": sub} if action is None else {"sub": sub, "action": action}
    answer = requests.post(location, data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:500]
    callback = answer.headers["Location"]
    assert callback.startswith("http://testserver/accounts/oidc/callback/?"), callback
    return callback.removeprefix("http://testserver")


def sign_in(client, provider_url, sub, user_claims, **kwargs):
    return client.get(authorize(client, provider_url, sub, user_claims, **kwargs))


def signed_in_as(client: Client):
    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id) if user_id else None


def sign_in_page_says(client: Client, response, text: str) -> None:
    assert response.status_code == 302 and response["Location"] == "/accounts/login/", response
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    content = html.unescape(page.content.decode())
    assert text in content, content[-3000:]


def events(name: str, user=None):
    entries = AuditEntry.objects.filter(additional_data__event=name)
    if user is not None:
        entries = entries.filter(object_pk=str(user.pk))
    return list(entries.order_by("pk"))


def test_sign_in_creates_the_user_and_maps_groups_to_roles(sso, provider_url):
    client = Client()
    response = sign_in(
        client,
        provider_url,
        "sub-dana",
        claims("dana", "mlops-approvers", "all-staff"),
        start="?next=/accounts/profile/",
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/profile/"
    user = signed_in_as(client)
    assert user is not None and user.username == "dana"
    assert (user.email, user.first_name, user.last_name) == ("dana@corp.example", "Dana", "Example")
    assert not user.has_usable_password()
    assert not user.is_superuser and not user.is_staff
    assert user_roles(user) == [APPROVERS]
    assert client.session["auth_method"] == "oidc"
    [login] = events("login.sso", user)
    assert login.actor_id == user.pk
    assert login.additional_data["sub"] == "sub-dana" and login.additional_data["created"] is True
    assert login.additional_data["roles_granted"] == [APPROVERS]
    [grant] = events("role.grant", user)
    assert grant.additional_data["role"] == APPROVERS and grant.additional_data["groups"] == ["mlops-approvers"]
    assert grant.actor.username == "system"


def test_the_session_works_for_pages(sso, provider_url):
    client = Client()
    sign_in(client, provider_url, "sub-erin", claims("erin", "mlops-engineers"))
    page = client.get("/accounts/profile/")
    assert page.status_code == 200 and "erin" in page.content.decode()


def test_every_sign_in_resyncs_mapped_roles_and_leaves_others_alone(sso, provider_url):
    client = Client()
    sign_in(client, provider_url, "sub-finn", claims("finn", "mlops-approvers"))
    user = get_user_model().objects.get(username="finn")
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name=AUDITORS))  # given in the portal, not by the provider
    client.logout()
    sign_in(client, provider_url, "sub-finn", claims("finn", "mlops-engineers", email="finn@new.example"))
    user.refresh_from_db()
    assert signed_in_as(client) == user
    assert user_roles(user) == [AUDITORS, ML_ENGINEERS]  # approvers removed, auditors kept
    assert user.email == "finn@new.example"
    [revoke] = events("role.revoke", user)
    assert revoke.additional_data["role"] == APPROVERS
    assert events("login.sso", user)[-1].additional_data["roles_removed"] == [APPROVERS]
    # Nothing asserted any more: the mapped role goes too, the portal's own stays.
    client.logout()
    sign_in(client, provider_url, "sub-finn", claims("finn"))
    assert user_roles(user) == [AUDITORS]


def test_an_unmapped_group_grants_nothing(sso, provider_url):
    client = Client()
    sign_in(client, provider_url, "sub-gus", claims("gus", "domain-admins", "platform-admins", "approvers"))
    user = signed_in_as(client)
    assert user.username == "gus" and user_roles(user) == []  # portal role names are not provider groups
    assert not user.is_superuser and not events("role.grant", user)


def test_team_map_joins_and_leaves_teams(sso, provider_url, owner):
    team = team_create(name="Risk", slug="risk", members=[owner])
    client = Client()
    sign_in(client, provider_url, "sub-hana", claims("hana", "risk-analysts"))
    user = signed_in_as(client)
    assert team.group.user_set.filter(pk=user.pk).exists()
    client.logout()
    sign_in(client, provider_url, "sub-hana", claims("hana"))
    assert not team.group.user_set.filter(pk=user.pk).exists()
    assert team.group.user_set.filter(pk=owner.pk).exists()
    assert [e.additional_data["event"] for e in events("team.join", user) + events("team.leave", user)] == [
        "team.join",
        "team.leave",
    ]


def test_a_state_this_session_did_not_issue_is_refused(sso, provider_url):
    client = Client()
    callback = authorize(client, provider_url, "sub-ivan", claims("ivan", "mlops-approvers"))
    query = parse_qs(urlsplit(callback).query)
    forged = f"/accounts/oidc/callback/?{urlencode({'code': query['code'][0], 'state': 'not-the-state'})}"
    response = client.get(forged)
    sign_in_page_says(client, response, "expired or was already used")
    assert signed_in_as(client) is None
    # Another browser (no session) bringing a real code and state is refused the same way.
    other = Client()
    sign_in_page_says(other, other.get(callback), "expired or was already used")
    assert signed_in_as(other) is None
    assert not get_user_model().objects.filter(username="ivan").exists()


def test_a_used_state_cannot_be_replayed(sso, provider_url):
    client = Client()
    callback = authorize(client, provider_url, "sub-jo", claims("jo"))
    assert client.get(callback).status_code == 302 and signed_in_as(client).username == "jo"
    client.logout()
    sign_in_page_says(client, client.get(callback), "expired or was already used")
    assert signed_in_as(client) is None


def test_the_provider_refusing_shows_its_error_code(sso, provider_url):
    client = Client()
    callback = authorize(client, provider_url, "sub-kim", claims("kim"), action="deny")
    assert "error=access_denied" in callback
    sign_in_page_says(client, client.get(callback), "Corp ID did not sign you in (access_denied)")
    assert signed_in_as(client) is None


def test_provider_down_at_the_start_is_a_clear_message(sso):
    sso.OIDC_ISSUER = dead_url()
    sso.OIDC_OP_DISCOVERY_URL = f"{sso.OIDC_ISSUER}/.well-known/openid-configuration"
    client = Client()
    sign_in_page_says(client, client.get("/accounts/oidc/authenticate/"), "Corp ID cannot be reached right now")


def test_provider_down_at_the_code_exchange_is_a_clear_message(sso, provider_url):
    client = Client()
    callback = authorize(client, provider_url, "sub-lee", claims("lee", "mlops-approvers"))
    sso.OIDC_OP_TOKEN_ENDPOINT = f"{dead_url()}/oauth2/token"
    sign_in_page_says(client, client.get(callback), "Corp ID cannot be reached right now")
    assert signed_in_as(client) is None
    assert not get_user_model().objects.filter(username="lee").exists()


def test_a_discovery_document_for_another_issuer_is_refused(sso, provider_url):
    sso.OIDC_ISSUER = "http://issuer.example"  # the document names the provider's own URL
    client = Client()
    sign_in_page_says(client, client.get("/accounts/oidc/authenticate/"), "misconfigured")


def test_an_id_token_from_another_issuer_is_refused(sso, provider_url):
    client = Client()
    callback = authorize(client, provider_url, "sub-max", claims("max"))
    # Endpoints given explicitly (no discovery), and an issuer the provider's tokens do not name.
    sso.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{provider_url}/oauth2/authorize"
    sso.OIDC_OP_TOKEN_ENDPOINT = f"{provider_url}/oauth2/token"
    sso.OIDC_OP_USER_ENDPOINT = f"{provider_url}/userinfo"
    sso.OIDC_OP_JWKS_ENDPOINT = f"{provider_url}/jwks"
    sso.OIDC_ISSUER = "http://issuer.example"
    sign_in_page_says(client, client.get(callback), "could not be verified")
    assert signed_in_as(client) is None
    assert not get_user_model().objects.filter(username="max").exists()


def test_a_code_the_provider_will_not_exchange_is_refused(sso, provider_url):
    client = Client()
    callback = authorize(client, provider_url, "sub-ned", claims("ned"))
    sso.OIDC_RP_CLIENT_ID = "another-client"  # the code was issued to "portal"
    sign_in_page_says(client, client.get(callback), "Corp ID refused to complete the sign-in")
    assert signed_in_as(client) is None


def test_a_deactivated_portal_user_stays_refused(sso, provider_url):
    client = Client()
    sign_in(client, provider_url, "sub-nia", claims("nia"))
    get_user_model().objects.filter(username="nia").update(is_active=False)
    client.logout()
    response = sign_in(client, provider_url, "sub-nia", claims("nia", "mlops-approvers"))
    sign_in_page_says(client, response, "This portal account is deactivated")
    assert signed_in_as(client) is None
    assert user_roles(get_user_model().objects.get(username="nia")) == []


def test_a_local_password_account_is_not_taken_over_unless_allowed(sso, provider_url):
    local = make_user("olga")  # has a password
    client = Client()
    response = sign_in(client, provider_url, "sub-olga", claims("olga", "mlops-approvers"))
    sign_in_page_says(client, response, "signs in with a password")
    assert signed_in_as(client) is None and user_roles(local) == []
    sso.OIDC_LINK_LOCAL_USERS = True
    sign_in(client, provider_url, "sub-olga", claims("olga", "mlops-approvers"))
    assert signed_in_as(client) == local and user_roles(local) == [APPROVERS]


def test_unknown_users_are_refused_when_creation_is_off(sso, provider_url):
    sso.OIDC_CREATE_USER = False
    client = Client()
    sign_in_page_says(client, sign_in(client, provider_url, "sub-pat", claims("pat")), "no portal account for 'pat'")
    assert not get_user_model().objects.filter(username="pat").exists()


def test_a_role_map_naming_no_portal_role_refuses_and_changes_nothing(sso, provider_url):
    sso.OIDC_ROLE_MAP = {**ROLE_MAP, "root": ("superusers",)}
    client = Client()
    response = sign_in(client, provider_url, "sub-quin", claims("quin", "mlops-approvers"))
    sign_in_page_says(client, response, "OIDC_ROLE_MAP names superusers")
    assert not get_user_model().objects.filter(username="quin").exists()


def test_missing_username_claim_is_refused(sso, provider_url):
    client = Client()
    user_claims = claims("rae")
    del user_claims["preferred_username"]
    sign_in_page_says(client, sign_in(client, provider_url, "sub-rae", user_claims), "'preferred_username' claim")


def test_sso_routes_say_so_when_not_configured(settings):
    assert settings.OIDC_ENABLED is False
    client = Client()
    sign_in_page_says(client, client.get("/accounts/oidc/authenticate/"), "Single sign-on is not set up")
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with" not in page and "/accounts/oidc/" not in page


def test_the_sign_in_page_offers_the_provider_when_configured(sso):
    page = Client().get("/accounts/login/?next=/audit/").content.decode()
    assert 'href="/accounts/oidc/authenticate/?next=%2Faudit%2F"' in page
    assert "Sign in with Corp ID" in page


def test_password_sign_in_never_calls_the_provider(sso, owner):
    sso.OIDC_ISSUER = dead_url()
    sso.OIDC_OP_DISCOVERY_URL = f"{sso.OIDC_ISSUER}/.well-known/openid-configuration"
    client = Client()
    response = client.post("/accounts/login/", {"username": "owner", "password": "correct-horse-battery-staple"})
    assert response.status_code == 302 and signed_in_as(client) == owner
    assert "auth_method" not in client.session or client.session["auth_method"] != "oidc"


def test_discovery_is_read_once_and_explicit_endpoints_win(sso, provider_url, monkeypatch):
    oidc._discovered.clear()
    first = oidc.provider()
    assert first.token_endpoint == f"{provider_url}/oauth2/token" and first.issuer == provider_url

    def no_second_fetch(*args, **kwargs):
        raise AssertionError("the discovery document was fetched again")

    monkeypatch.setattr(oidc.requests, "get", no_second_fetch)
    sso.OIDC_OP_TOKEN_ENDPOINT = "https://elsewhere.example/token"
    assert oidc.provider().token_endpoint == "https://elsewhere.example/token"
    assert oidc.provider().userinfo_endpoint == f"{provider_url}/userinfo"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_ISSUER": "https://idp.example"}, "half configured"),
        ({"OIDC_RP_CLIENT_ID": "portal", "OIDC_RP_CLIENT_SECRET": "x"}, "half configured"),
        ({"OIDC_ROLE_MAP": "approvers"}, "is not 'provider-group=portal-name'"),
    ],
)
def test_settings_refuse_a_half_configuration(env, message):
    result = subprocess.run(
        [sys.executable, "-c", "import portal.settings"],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and message in result.stderr


def test_role_map_syntax(monkeypatch):
    from portal.settings.security import _oidc_map

    monkeypatch.setenv("X_MAP", "a=approvers, a=auditors,b = viewers")
    assert _oidc_map("X_MAP") == {"a": ("approvers", "auditors"), "b": ("viewers",)}
    monkeypatch.setenv("X_MAP", "CN=Approvers,OU=Groups,DC=corp=approvers;CN=Eng,DC=corp=ml-engineers")
    assert _oidc_map("X_MAP") == {"CN=Approvers,OU=Groups,DC=corp": ("approvers",), "CN=Eng,DC=corp": ("ml-engineers",)}
