"""Single sign-on routes (issue 17): open to anonymous callers, since they are how one signs in.

`authenticate/` sends everyone on to the provider; `callback/` without a code and state this
session issued ends on the sign-in page (tests/accounts/test_oidc.py runs the whole flow against
a real provider process). Here the portal is configured with explicit endpoints, so no provider
needs to answer; the second class checks the routes when single sign-on is not set up.
"""

from __future__ import annotations

import pytest

from tests.access.matrix import AccessMatrix

EVERYONE = dict(owner=302, stranger=302, admin=302, anon=302)


class TestSsoAccess(AccessMatrix):
    rows = {
        ("GET", "/accounts/oidc/authenticate/"): EVERYONE,
        ("GET", "/accounts/oidc/callback/"): EVERYONE,
    }

    @pytest.fixture(autouse=True)
    def _sso_configured(self, settings):
        settings.OIDC_ENABLED = True
        settings.OIDC_ISSUER = "https://idp.example"
        settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "https://idp.example/authorize"
        settings.OIDC_OP_TOKEN_ENDPOINT = "https://idp.example/token"
        settings.OIDC_OP_USER_ENDPOINT = "https://idp.example/userinfo"
        settings.OIDC_OP_JWKS_ENDPOINT = "https://idp.example/jwks"
        settings.OIDC_RP_CLIENT_ID = "portal"
        settings.OIDC_RP_CLIENT_SECRET = "matrix-secret"
        settings.AUTHENTICATION_BACKENDS = [*settings.AUTHENTICATION_BACKENDS, "apps.accounts.oidc.PortalOIDCBackend"]


class TestSsoAccessWhenNotConfigured(AccessMatrix):
    # Back to the sign-in page with "Single sign-on is not set up", for everyone.
    rows = {
        ("GET", "/accounts/oidc/authenticate/"): EVERYONE,
        ("GET", "/accounts/oidc/callback/"): EVERYONE,
    }
