"""Audit logins, logouts and failed logins (aggregated, apps/accounts/lockout.py), start a new
session's idle clock, name the API token in audit entries written on its requests; keep users that the audit trail refers to; make open
sockets re-check access when a user is deactivated or leaves a team or role, by whatever path
(services, the admin, a shell)."""

import time

from auditlog.context import auditlog_value
from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import PermissionDenied
from django.core.signals import request_finished
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import lockout, principals, tokens, twofactor
from apps.accounts.middleware import SESSION_LAST_SEEN, SESSION_STARTED
from apps.accounts.models import ApiToken, Team
from apps.core.audit import audit_event
from apps.core.models import AuditEntry
from apps.core.realtime import access_changed, user_access_group


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    audit_event(actor=user, event="login", obj=user, request=request)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_event(actor=user, event="logout", obj=user, request=request)


@receiver(user_logged_in)
def start_session_clocks(sender, request, user, **kwargs):
    """A new session starts its idle clock, and remembers once whether its user has a second
    factor (apps/accounts/middleware.py then asks no database on its requests)."""
    session = getattr(request, "session", None)
    if session is None:
        return
    session[SESSION_LAST_SEEN] = session[SESSION_STARTED] = time.time()
    if not twofactor.has_device(user):
        session[twofactor.SESSION_NO_DEVICE] = True


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    """Aggregated (apps/accounts/lockout.py): at most one entry per username and address per window."""
    username = str(credentials.get("username", ""))[:150]
    lockout.login_failure_audit(request=request, username=username)


@receiver(user_locked_out)
def audit_locked_out(sender, request, username, ip_address, **kwargs):
    lockout.login_failure_audit(request=request, username=str(username or "")[:150], event="login.locked_out")


@receiver(pre_save, sender=get_user_model())
def refuse_saving_token_narrowed_user(sender, instance, **kwargs):
    """A platform admin acting through a token without the `admin` scope is given a copy of their
    user without admin standing (apps/accounts/tokens.py); that copy must never be written back."""
    if getattr(instance, "_portal_token_narrowed", False):
        raise PermissionDenied("This user object was narrowed for a token; it cannot be saved.")


@receiver(pre_save, sender=AuditEntry)
def name_the_token(sender, instance, **kwargs):
    """Every audit entry written while a request runs on an API token names the token (its prefix)."""
    prefix = tokens.request_token_prefix()
    if prefix and isinstance(instance.additional_data, dict | type(None)):
        instance.additional_data = {**(instance.additional_data or {}), "token": prefix}


@receiver(request_finished)
def forget_the_token(sender, **kwargs):
    tokens.request_token_forget()


@receiver(post_delete, sender=TOTPDevice)
def audit_authenticator_removed(sender, instance, **kwargs):
    """Device rows are not row-audited (they hold the secret); a confirmed authenticator removed by
    any path (its owner, a new enrolment, a platform admin resetting a lost phone in the admin
    site) is recorded with whoever the request runs as."""
    if instance.confirmed:
        audit_event(actor=_current_actor(), event="2fa.device_removed", obj=instance.user)


def _current_actor():
    try:
        return auditlog_value.get().get("actor")
    except LookupError:
        return None


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
