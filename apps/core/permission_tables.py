"""Guardian's direct object-permission tables, declared per model (fast joins, real foreign keys).

The rows they hold are written by `apps.core.permissions` (grant_owner, share, ...) and read by its
`restrict` and `can`; this module only declares the tables."""

from __future__ import annotations

from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase


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
