"""DRF glue for object permissions: filter lists, 404 for invisible, 403 for read-only."""

from __future__ import annotations

from rest_framework import filters, permissions

from apps.core.permissions import full_perm, restrict, user_can

METHOD_ACTIONS = {"PUT": "change", "PATCH": "change", "DELETE": "delete", "POST": "change"}


class ObjectPermissionFilter(filters.BaseFilterBackend):
    """Lists and lookups only ever see objects the caller may view."""

    def filter_queryset(self, request, queryset, view):
        return restrict(queryset, request.user, "view")


class PortalObjectPermission(permissions.BasePermission):
    """Create needs the role's `add_` model permission; writes need the object permission."""

    def has_permission(self, request, view) -> bool:
        if request.method == "POST" and getattr(view, "action", None) == "create":
            model = view.get_queryset().model
            if not request.user.has_perm(full_perm(model, "add")):
                self.message = f"Your roles do not allow creating a {model._meta.verbose_name}; ask a platform admin."
                return False
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True  # visibility is already enforced by ObjectPermissionFilter (404 otherwise)
        action = getattr(view, "object_action_map", {}).get(getattr(view, "action", None)) or METHOD_ACTIONS.get(
            request.method, "change"
        )
        if user_can(request.user, obj, action):
            return True
        self.message = f"You may view this {obj._meta.verbose_name} but not {action} it."
        return False


class OwnedObjectViewSetMixin:
    """Viewsets over OwnedModel: permission-filtered queryset plus object permission checks."""

    filter_backends_base = [ObjectPermissionFilter]
    permission_classes_extra = [PortalObjectPermission]

    def get_permissions(self):
        return [*super().get_permissions(), *(cls() for cls in self.permission_classes_extra)]

    def filter_queryset(self, queryset):
        queryset = ObjectPermissionFilter().filter_queryset(self.request, queryset, self)
        return super().filter_queryset(queryset)
