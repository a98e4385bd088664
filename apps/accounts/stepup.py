"""Step-up: a fresh second factor before a sensitive action (an approval decision, a key rotation).

One rule for pages and the API (`step_up_passed`): a user who must have two-factor sign-in
(`twofactor.two_factor_required`) or who enrolled a device, while PORTAL_2FA_ENFORCED is on, must
have passed a second factor within PORTAL_STEPUP_MAX_AGE_S seconds. A browser session remembers
when it last did (sign-in, enrolment, an earlier step-up); a code sent with the action counts too
(pages: the `otp` field; API: the `X-OTP` header or an `otp` field, a current TOTP code only).
Token callers have no session, so they send a code with every decision.

Boundaries: pages call `step_up_page` to ask for the code and re-send the same form (nothing the
user typed is lost); the API calls `require_step_up_api`, which answers 403 with
`{"detail": ..., "code": "step_up_required"}`. Key rotation from the portal (apps/core/keyring_views.py,
apps/core/api/keys.py) uses the same rule with the action `keys.rotate`; the `keys_rotate`
management command runs on the server, outside the web's sign-in and step-up.
"""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from rest_framework import exceptions

from apps.accounts import lockout, twofactor
from apps.core.audit import audit_event

STEP_UP_CODE = "step_up_required"


def step_up_needed(user) -> bool:
    if not settings.PORTAL_2FA_ENFORCED:
        return False
    return twofactor.two_factor_required(user) or twofactor.has_device(user)


def step_up_passed(request, code: str | None, *, session=None, action: str = "") -> bool:
    """Has the caller passed a second factor recently enough for `action`, or does `code` pass one
    now? `session`: the browser session to read and mark (None for token callers)."""
    user = request.user
    if not step_up_needed(user):
        return True
    max_age = settings.PORTAL_STEPUP_MAX_AGE_S
    if session is not None and twofactor.verified_within(session, max_age):
        return True
    if not code:
        return False
    device = twofactor.second_factor_check(user, code, totp_only=session is None)
    if device is None:  # audited at most once per user and address per window (throttled by django-otp too)
        lockout.login_failure_audit(request=request, username=user.get_username(), event="2fa.step_up_failed")
        return False
    if session is not None:
        twofactor.mark_session_verified(session)
    audit_event(actor=user, event="2fa.step_up", obj=user, request=request, data={"action": action})
    return True


def step_up_page(
    request,
    *,
    fields: dict,
    summary: str,
    wrong_code: bool,
    status: int = 403,
    what: str = "Approval decisions",
    submit_label: str = "Confirm and send the decision",
):
    """Ask for a code and send the same form again, with every field the user filled in. `what`
    names the kind of action (plural) and `submit_label` the button."""
    context = {
        "what": what,
        "submit_label": submit_label,
        "action": request.path,
        "fields": [(name, value) for name, value in fields.items() if name not in ("otp", "csrfmiddlewaretoken")],
        "summary": summary,
        "wrong_code": wrong_code,
        "has_device": twofactor.has_device(request.user),
        "max_age_min": max(1, settings.PORTAL_STEPUP_MAX_AGE_S // 60),
    }
    return render(request, "accounts/stepup.html", context, status=status)


def require_step_up_api(request, code: str | None, *, action: str) -> None:
    """API callers: raise a 403 `step_up_required` unless the step-up rule is met. A token caller
    sends a current TOTP code (`X-OTP` header or `otp` field); a session caller may rely on a
    second factor its session passed within PORTAL_STEPUP_MAX_AGE_S."""
    code = code or request.headers.get("X-OTP") or ""
    session = getattr(request, "session", None) if getattr(request, "auth", None) is None else None
    if step_up_passed(request, code, session=session, action=action):
        return
    if not twofactor.has_device(request.user):
        detail = "This action needs a second factor: enrol an authenticator on your profile page first."
    elif code:
        detail = "The one-time code was not accepted (wrong, used already, or too many attempts); send a new one."
    else:
        detail = "This action needs a current one-time code from your authenticator: send it in the X-OTP header."
    raise exceptions.PermissionDenied({"detail": detail, "code": STEP_UP_CODE})
