"""DRF authentication by `Authorization: Token <key>` and the scope check that goes with it."""

from __future__ import annotations

from rest_framework import authentication, exceptions, permissions

from apps.accounts.tokens import find_token

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None
        if not key.strip():
            raise exceptions.AuthenticationFailed("Authorization header has no token after 'Token'.")
        token = find_token(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class TokenScopePermission(permissions.BasePermission):
    """Token callers need `read` for safe methods and `write` for the rest (or a view's own scope).

    Views may set `required_scope` (e.g. "predict") for endpoints with a dedicated scope.
    Session callers are not limited by scopes; their roles and object permissions apply.
    """

    message = "This token's scopes do not allow this request."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None or not hasattr(token, "scopes"):
            return True
        needed = getattr(view, "required_scope", None) or ("read" if request.method in SAFE_METHODS else "write")
        if needed in token.scopes:
            return True
        self.message = f"This token lacks the '{needed}' scope; create one with it on your profile page."
        return False


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
                "description": "`Token <key>`; create keys on your profile page or with manage.py token_create.",
            }
except ImportError:  # pragma: no cover
    pass
