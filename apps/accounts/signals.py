"""Audit logins, logouts and failed logins; keep users that the audit trail refers to; make open
sockets re-check access when a user is deactivated or leaves a team or role, by whatever path
(services, the admin, a shell)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import PermissionDenied
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete
from django.dispatch import receiver

from apps.accounts import principals
from apps.accounts.models import ApiToken, Team
from apps.core.audit import audit_event
from apps.core.realtime import access_changed, user_access_group


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    audit_event(actor=user, event="login", obj=user, request=request)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_event(actor=user, event="logout", obj=user, request=request)


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit_event(
        actor=None, event="login.failed", obj=None, request=request, data={"username": username}, repr_text=username
    )


@receiver(pre_delete, sender=get_user_model())
def refuse_user_delete(sender, instance, **kwargs):
    raise PermissionDenied(
        "Users are deactivated, not deleted: the audit trail refers to them. Untick 'active' instead."
    )


@receiver(post_save, sender=get_user_model())
def recheck_sockets_on_deactivation(sender, instance, created, **kwargs):
    if not created and not instance.is_active:
        access_changed([user_access_group(instance.pk)])


@receiver(m2m_changed, sender=get_user_model().groups.through)
def recheck_sockets_on_group_removal(sender, instance, action, reverse, pk_set, **kwargs):
    """`user.groups.remove(group)` and `group.user_set.remove(user)` alike (team removal, roles)."""
    if action not in ("post_remove", "pre_clear"):  # pre_clear: a group's members are still listed
        return
    if not reverse:  # instance is the user
        users = [instance.pk]
    elif action == "post_remove":  # instance is the group; pk_set holds the users removed
        users = list(pk_set or ())
    else:
        users = list(instance.user_set.values_list("pk", flat=True))
    access_changed([user_access_group(pk) for pk in users])


def _caller_changed(sender, **kwargs) -> None:
    """Users, tokens, roles and teams are cached per process (apps/accounts/principals.py)."""
    principals.bump()


for _model in (get_user_model(), ApiToken, Group, Team):
    post_save.connect(_caller_changed, sender=_model, dispatch_uid=f"accounts.principals.save.{_model._meta.label}")
    post_delete.connect(_caller_changed, sender=_model, dispatch_uid=f"accounts.principals.delete.{_model._meta.label}")
for _through in (get_user_model().groups.through, get_user_model().user_permissions.through, Group.permissions.through):
    m2m_changed.connect(
        _caller_changed, sender=_through, dispatch_uid=f"accounts.principals.m2m.{_through._meta.label}"
    )
