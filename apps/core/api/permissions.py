"""DRF's permission class, built on the one decision point (`apps.core.permissions`).

It is the default for every API view (settings.REST_FRAMEWORK), so a view declares nothing to be
safe: the caller must be signed in, a token must carry the scope the method needs (`read` for
safe methods, `write` for the rest, or the view's own `required_scope`, one name or a tuple of
alternatives), and object checks ask `can(user, action, obj)` with the action the method maps to.
Views that list or fetch go through `_visible` / `_for` selectors, which restrict the same way.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from apps.core.permissions import can, is_active_user, scope_for_method, token_allows

METHOD_ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "change",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class PortalPermission(BasePermission):
    """Signed in, token scope allowed, and (for object checks) the object permission."""

    message = "Authentication credentials were not provided."

    def has_permission(self, request, view) -> bool:
        if not is_active_user(request.user):
            return False  # DRF answers 401 (not authenticated) with the authenticator's header
        scopes = getattr(view, "required_scope", None) or scope_for_method(request.method)
        if token_allows(request.auth, scopes):
            return True
        wanted = scopes if isinstance(scopes, str) else " or ".join(scopes)
        self.message = f"This token lacks the '{wanted}' scope; create one with it on your profile page."
        return False

    def has_object_permission(self, request, view, obj) -> bool:
        action = METHOD_ACTIONS.get(request.method, "change")
        if can(request.user, action, obj):
            return True
        self.message = f"You may view this {obj._meta.verbose_name} but not {action} it."
        return False
