"""Audit logins, logouts and failed logins; keep users that the audit trail refers to."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import PermissionDenied
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from apps.core.audit import audit_event


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
