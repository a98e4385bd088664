"""Guardian plumbing behind the decision point: the permission rows that `apps.core.permissions`
reads. Only services call these (the share service in `apps.core.sharing`, creators granting their
owner, platform admins' grants to teams); `apps.core.permissions` re-exports them, and imports
nothing else from here. Nothing in this module answers "may this user ...".
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import models
from guardian.shortcuts import assign_perm, remove_perm

Role = str
ROLE_ACTIONS: dict[str, tuple[str, ...]] = {"viewer": ("view",), "editor": ("view", "change")}
OWNER_ACTIONS = ("view", "change", "delete")


def codename(model: type[models.Model] | models.Model, action: str) -> str:
    return f"{action}_{model._meta.model_name}"


def full_perm(model: type[models.Model] | models.Model, action: str) -> str:
    return f"{model._meta.app_label}.{codename(model, action)}"


def grant_owner(obj: models.Model) -> None:
    """Give `obj.owner` view, change and delete on `obj` (called by the service that creates it)."""
    for action in OWNER_ACTIONS:
        assign_perm(codename(obj, action), obj.owner, obj)


def share(obj: models.Model, *, role: Role, user=None, team=None) -> None:
    """Low-level: give a user or a team `role` on `obj` (editor implies viewer; viewer downgrades).

    Call it through `apps.core.sharing.share_object` (checks, audit, sockets), or from a creating
    service for its team; nothing else."""
    target = _share_target(user, team)
    if role not in ROLE_ACTIONS:
        raise ValueError(f"Unknown role {role!r}: use viewer or editor.")
    for action in ROLE_ACTIONS[role]:
        assign_perm(codename(obj, action), target, obj)
    if role == "viewer":  # downgrading an editor removes the change right
        remove_perm(codename(obj, "change"), target, obj)


def unshare(obj: models.Model, *, user=None, team=None) -> None:
    """Low-level: remove every role right of a user or a team on `obj` (the owner keeps access)."""
    target = _share_target(user, team)
    if user is not None and getattr(obj, "owner_id", None) == user.pk:
        raise ValueError("The owner always keeps access; transfer ownership instead.")
    for action in OWNER_ACTIONS:
        remove_perm(codename(obj, action), target, obj)


def grant_extra(obj: models.Model, codename_: str, *, user=None, team=None, granted: bool = True) -> None:
    """Low-level: give or take an extra object permission (e.g. ``view_pii``) on `obj`."""
    (assign_perm if granted else remove_perm)(codename_, _share_target(user, team), obj)


def _share_target(user, team) -> object:
    if (user is None) == (team is None):
        raise ValueError("Share with exactly one user or one team.")
    if team is not None:
        return team.group if not isinstance(team, Group) else team
    return user


def team_grant(team, perm: str, *, granted: bool = True) -> bool:
    """Low-level: give (or take) the model permission ``app_label.codename`` to a team's group, so
    that every member holds it (e.g. ``training.launch_trainingscript``). True when it changed."""
    app_label, codename_ = perm.split(".", 1)
    permission = Permission.objects.get(content_type__app_label=app_label, codename=codename_)
    group = team.group if not isinstance(team, Group) else team
    held = group.permissions.filter(pk=permission.pk).exists()
    if held == granted:
        return False
    (group.permissions.add if granted else group.permissions.remove)(permission)
    return True


def team_grants(team, perm: str) -> bool:
    """Does the team's group hold the model permission ``app_label.codename`` itself?"""
    app_label, codename_ = perm.split(".", 1)
    group = team.group if not isinstance(team, Group) else team
    return group.permissions.filter(content_type__app_label=app_label, codename=codename_).exists()
