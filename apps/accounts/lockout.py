"""Sign-in lock-out (django-axes) and the audit of failed sign-ins.

Axes counts failures per username and client address (settings: AXES_LOCKOUT_PARAMETERS) in its
AccessAttempt rows, which expire after the cool-off; at AXES_FAILURE_LIMIT the pair is locked out.
This module gives axes the portal's answer to a locked-out sign-in (`lockout_response`: the
sign-in page with a message that says what to do), lets platform admins see and release
lock-outs (`lockouts_visible`, `lockout_release`), and writes failed sign-ins into the audit trail
aggregated (`login_failure_audit`): an anonymous caller must not be able to grow the append-only,
hash-chained audit table by one entry per attempt.
"""

from __future__ import annotations

from datetime import timedelta

from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.conf import settings
from django.db.models import QuerySet
from django.shortcuts import render
from django.utils import timezone

from apps.accounts.forms import LoginForm
from apps.core.audit import audit_event, client_ip
from apps.core.errors import NotFound
from apps.core.models import AuditEntry
from apps.core.permissions import is_platform_admin

# Not a valid username (letters, digits and @.+-_ only): the entry that stands for "more usernames
# failed from this address in this window" cannot be mistaken for a person.
MANY_USERNAMES = "*"


def lockout_message() -> str:
    minutes = settings.PORTAL_LOCKOUT_COOLOFF_MIN
    unit = "minute" if minutes == 1 else "minutes"
    return (
        f"Too many failed sign-ins for this account from your address; try again in {minutes} {unit} "
        "(each further attempt starts the wait again) or ask a platform admin to unlock it."
    )


def lockout_response(request, *_args, **_kwargs):
    """axes' AXES_LOCKOUT_CALLABLE: the sign-in page again, with the lock-out message (429).

    axes calls it as (request, response, credentials) or, on its async path, with other
    arguments: only the request is used."""
    username = (request.POST.get("username") or "")[:150] if request.method == "POST" else ""
    form = LoginForm(request, initial={"username": username})
    context = {"form": form, "lockout_message": lockout_message(), "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)


# --- failed sign-ins in the audit trail --------------------------------------------------------


def _recent(event: str, ip: str | None) -> QuerySet[AuditEntry]:
    since = timezone.now() - timedelta(seconds=settings.PORTAL_LOGIN_AUDIT_WINDOW_S)
    entries = AuditEntry.objects.filter(additional_data__event=event, timestamp__gte=since)
    return entries.filter(remote_addr=ip) if ip else entries.filter(remote_addr__isnull=True)


def login_failure_audit(*, request, username: str, event: str = "login.failed") -> AuditEntry | None:
    """Record a failed sign-in (or, with event="login.locked_out", a lock-out) unless one is already
    recorded for this username and address in the current window (PORTAL_LOGIN_AUDIT_WINDOW_S).

    The entry carries `failures`, axes' count of failures for the pair so far, so the trail still
    shows how hard an account was tried. Past PORTAL_LOGIN_AUDIT_USERNAMES_PER_IP usernames from
    one address in a window, that address's further failures share one entry (username "*"). So an
    address adds at most (that many + 1) entries of each event per window, whatever it sends."""
    ip = client_ip(request)
    recorded = set(_recent(event, ip).values_list("object_repr", flat=True))  # each name once per window
    if username in recorded:
        return None
    data = {"username": username, "window_s": settings.PORTAL_LOGIN_AUDIT_WINDOW_S}
    failures = getattr(request, "axes_failures_since_start", None)
    if failures is not None:
        data["failures"] = failures
    if len(recorded) >= settings.PORTAL_LOGIN_AUDIT_USERNAMES_PER_IP:
        if MANY_USERNAMES in recorded:
            return None
        username = MANY_USERNAMES
        data = {
            "username": MANY_USERNAMES,
            "window_s": settings.PORTAL_LOGIN_AUDIT_WINDOW_S,
            "note": "more usernames failed from this address in this window; they are not listed one by one",
        }
    return audit_event(actor=None, event=event, obj=None, request=request, data=data, repr_text=username)


# --- platform admins: see and release lock-outs ------------------------------------------------


def lockouts_visible(user) -> QuerySet[AccessAttempt]:
    """Username and address pairs locked out now (platform admins only; anyone else: NotFound)."""
    if not is_platform_admin(user):
        raise NotFound("Page not found.")
    since = timezone.now() - timedelta(minutes=settings.PORTAL_LOCKOUT_COOLOFF_MIN)
    return AccessAttempt.objects.filter(
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gt=since
    ).order_by("-attempt_time", "-pk")


def lockout_release(*, actor, username: str, request=None) -> int:
    """Unlock `username` from every address (platform admins only; anyone else: NotFound).
    Audited as `login.unlock` with the admin as actor; returns the counter rows removed."""
    if not is_platform_admin(actor):
        raise NotFound("Page not found.")
    username = (username or "").strip()[:150]
    addresses = sorted(
        {ip or "" for ip in AccessAttempt.objects.filter(username=username).values_list("ip_address", flat=True)}
    )
    removed = axes_reset(username=username) if username else 0
    audit_event(
        actor=actor,
        event="login.unlock",
        obj=None,
        request=request,
        data={"username": username, "addresses": addresses, "counters_removed": removed},
        repr_text=username,
    )
    return removed
