"""Object permissions: one sharing helper, permission-filtered querysets, deny by default.

Every owned object gets guardian object permissions. Owners receive view/change/delete on
creation; others get them only through `share()`. A user who may not view an object is told it
does not exist (404); one who may view but not change it gets 403.
"""

from __future__ import annotations

from typing import Literal

from django.contrib.auth.models import AnonymousUser, Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q, QuerySet
from django.db.models.functions import Cast
from django.http import Http404
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from guardian.shortcuts import assign_perm, remove_perm
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

Action = Literal["view", "change", "delete"]
Role = Literal["viewer", "editor"]
ROLE_ACTIONS: dict[str, tuple[str, ...]] = {"viewer": ("view",), "editor": ("view", "change")}
OWNER_ACTIONS = ("view", "change", "delete")


def codename(model: type[models.Model] | models.Model, action: str) -> str:
    return f"{action}_{model._meta.model_name}"


def full_perm(model: type[models.Model] | models.Model, action: str) -> str:
    return f"{model._meta.app_label}.{codename(model, action)}"


def object_permission_models(model: type[models.Model]) -> tuple[type, type]:
    """Declare guardian's direct foreign-key permission tables for `model` (fast joins, real FKs).

    Call once in the app's models.py: ``ModelUserPerm, ModelGroupPerm = object_permission_models(M)``.
    """
    attrs = {"__module__": model.__module__, "Meta": type("Meta", (), {"app_label": model._meta.app_label})}
    user_perm = type(
        f"{model.__name__}UserObjectPermission",
        (UserObjectPermissionBase,),
        {**attrs, "content_object": models.ForeignKey(model, on_delete=models.CASCADE)},
    )
    group_perm = type(
        f"{model.__name__}GroupObjectPermission",
        (GroupObjectPermissionBase,),
        {**attrs, "content_object": models.ForeignKey(model, on_delete=models.CASCADE)},
    )
    return user_perm, group_perm


def grant_owner(obj: models.Model) -> None:
    for action in OWNER_ACTIONS:
        assign_perm(codename(obj, action), obj.owner, obj)


def share(obj: models.Model, *, role: Role, user=None, team=None) -> None:
    """Share `obj` with a user or a team. Editor implies viewer."""
    target = _share_target(user, team)
    if role not in ROLE_ACTIONS:
        raise ValueError(f"Unknown role {role!r}: use viewer or editor.")
    for action in ROLE_ACTIONS[role]:
        assign_perm(codename(obj, action), target, obj)
    if role == "viewer":  # downgrading an editor removes the change right
        remove_perm(codename(obj, "change"), target, obj)


def unshare(obj: models.Model, *, user=None, team=None) -> None:
    target = _share_target(user, team)
    if user is not None and getattr(obj, "owner_id", None) == user.pk:
        raise ValueError("The owner always keeps access; transfer ownership instead.")
    for action in OWNER_ACTIONS:
        remove_perm(codename(obj, action), target, obj)


def _share_target(user, team) -> object:
    if (user is None) == (team is None):
        raise ValueError("Share with exactly one user or one team.")
    if team is not None:
        return team.group if not isinstance(team, Group) else team
    return user


def restrict(queryset: QuerySet, user, action: Action = "view") -> QuerySet:
    """The objects in `queryset` that `user` may `action`, as one SQL query (no id lists)."""
    if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated or not user.is_active:
        return queryset.none()
    model = queryset.model
    if user.is_superuser or user.has_perm(full_perm(model, action)):
        return queryset
    ctype = ContentType.objects.get_for_model(model)
    perm_filter = {"permission__content_type": ctype, "permission__codename": codename(model, action)}
    user_model = get_user_obj_perms_model(model)
    group_model = get_group_obj_perms_model(model)
    if _is_direct(user_model):
        by_user = user_model.objects.filter(user=user, **perm_filter).values("content_object_id")
        by_group = group_model.objects.filter(group__user=user, **perm_filter).values("content_object_id")
    else:  # generic tables: object_pk is a string column; PostgreSQL needs it cast to the pk type
        pk_field = model._meta.pk
        target = models.BigIntegerField() if pk_field.get_internal_type().endswith("AutoField") else pk_field
        by_user = (
            user_model.objects.filter(user=user, **perm_filter).annotate(obj=Cast("object_pk", target)).values("obj")
        )
        by_group = (
            group_model.objects.filter(group__user=user, **perm_filter)
            .annotate(obj=Cast("object_pk", target))
            .values("obj")
        )
    return queryset.filter(Q(pk__in=by_user) | Q(pk__in=by_group))


def _is_direct(perm_model: type) -> bool:
    return not getattr(perm_model._meta, "abstract", False) and perm_model.__name__ not in (
        "UserObjectPermission",
        "GroupObjectPermission",
    )


def user_can(user, obj: models.Model, action: Action) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.has_perm(full_perm(obj, action)) or user.has_perm(codename(obj, action), obj)


def get_visible_or_404(queryset: QuerySet, user, **lookup) -> models.Model:
    """Fetch one object the user may view; anything else is indistinguishable from missing."""
    try:
        return restrict(queryset, user, "view").get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from None


def require(user, obj: models.Model, action: Action) -> None:
    """Raise 404 when the object is invisible, 403 when visible but the action is not allowed."""
    if not user_can(user, obj, "view"):
        raise Http404(f"No {obj._meta.verbose_name} matches the given query.")
    if action != "view" and not user_can(user, obj, action):
        raise PermissionDenied(f"You may view this {obj._meta.verbose_name} but not {action} it.")


def require_model_perm(user, model: type[models.Model], action: str) -> None:
    if not (user.is_authenticated and user.has_perm(full_perm(model, action))):
        raise PermissionDenied(
            f"Your roles do not allow you to {action} a {model._meta.verbose_name}; ask a platform admin."
        )
