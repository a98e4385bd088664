"""Roles are auth groups with least-privilege model permissions.

Each app declares what its roles may do with `role_permissions` on its AppConfig
({"role": ["app_label.codename", ...]}); `sync_roles` runs after every migrate and makes each
role group hold exactly those permissions. Object access still needs object permissions.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.models import Group, Permission

ML_ENGINEERS = "ml-engineers"
DATA_STEWARDS = "data-stewards"
APPROVERS = "approvers"
PLATFORM_ADMINS = "platform-admins"
AUDITORS = "auditors"
VIEWERS = "viewers"
ROLES = (ML_ENGINEERS, DATA_STEWARDS, APPROVERS, PLATFORM_ADMINS, AUDITORS, VIEWERS)

ROLE_DESCRIPTIONS = {
    ML_ENGINEERS: "Register models, log experiments, launch training, request promotions.",
    DATA_STEWARDS: "Own feature views: schemas, PII classification, residency, access.",
    APPROVERS: "Decide on promotion requests in the approval inbox.",
    PLATFORM_ADMINS: "Manage users, teams, queues and keys in the admin console.",
    AUDITORS: "Read and export the audit trail and verify its integrity.",
    VIEWERS: "Read what has been shared with them.",
}


def declared_role_permissions() -> dict[str, set[str]]:
    declared: dict[str, set[str]] = {role: set() for role in ROLES}
    for config in apps.get_app_configs():
        for role, perms in getattr(config, "role_permissions", {}).items():
            if role not in declared:
                raise ValueError(f"{config.label} declares permissions for unknown role {role!r}")
            declared[role].update(perms)
    return declared


def sync_roles(sender=None, **_kwargs) -> None:
    """post_migrate runs per app; permissions of later apps exist only once the last one ran."""
    if sender is not None and sender is not list(apps.get_app_configs())[-1]:
        return
    for role, perms in declared_role_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in sorted(perms):
            app_label, codename = perm.split(".", 1)
            found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if found is None:
                raise ValueError(f"Role {role!r} names permission {perm!r}, which does not exist.")
            wanted.append(found)
        group.permissions.set(wanted)


def user_roles(user) -> list[str]:
    return sorted(g.name for g in user.groups.all() if g.name in ROLES)
