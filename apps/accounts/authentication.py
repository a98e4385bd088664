"""DRF authentication by `Authorization: Token <key>` or `Bearer <key>` (shared/API.md); scopes are
checked by `apps.core.api.permissions.PortalPermission`."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from apps.accounts.tokens import find_token, request_token_remember
from apps.core.audit import attribute_request_to


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"
    keywords = ("token", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword.lower() not in self.keywords:
            return None
        if not key.strip():
            raise exceptions.AuthenticationFailed(f"Authorization header has no token after {keyword!r}.")
        token = find_token(key.strip())
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        attribute_request_to(token.user)  # the audit middleware ran before DRF knew who this is
        request_token_remember(token)  # audit entries of this request name the token (its prefix)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


try:  # document the scheme in the OpenAPI schema
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class ApiTokenScheme(OpenApiAuthenticationExtension):
        target_class = "apps.accounts.authentication.ApiTokenAuthentication"
        name = "TokenAuth"

        def get_security_definition(self, auto_schema):
            return {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Token <key>` or `Bearer <key>`; create keys on your profile page or with manage.py token_create.",
            }
except ImportError:  # pragma: no cover
    pass
