"""Pages for two-factor sign-in and lock-outs: the code step of sign-in, enrolment with a QR code,
recovery codes (shown once), the user's own 2FA settings, and the platform admins' lock-out list.

The code step and enrolment also serve a *pending* sign-in (password accepted, not signed in yet),
so they are open without a session user; everything they do is for that one pending user.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_static.models import StaticDevice

from apps.accounts import lockout, twofactor
from apps.accounts.forms import EnrolCodeForm, OtpCodeForm, UnlockForm
from apps.core.forms import apply_validation_error

SESSION_NEW_CODES = "portal_2fa_new_codes"


def _verify_url() -> str:
    return reverse("accounts:2fa-verify")


def _safe_next(request, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(candidate, {request.get_host()}, request.is_secure()):
        return candidate
    return "/"


def _subject(request):
    """(user, pending) for the two-factor pages: the pending sign-in's user, else the session's."""
    user = twofactor.pending_user(request)
    if user is not None:
        return user, True
    if request.user.is_authenticated:
        return request.user, False
    return None, False


def _session_expired(request):
    messages.info(request, "Your sign-in expired before it was finished; enter your password again.")
    return redirect("accounts:login")


@login_not_required
@never_cache
def verify(request):
    """The second step of sign-in: a code from the authenticator, or one recovery code."""
    user, pending = _subject(request)
    if user is None:
        return _session_expired(request)
    next_url = twofactor.pending_next(request) if pending else request.GET.get("next", "")
    form = OtpCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = twofactor.second_factor_check(user, form.cleaned_data["code"])
        if device is not None:
            if pending:
                twofactor.pending_finish(request, user)
            else:
                twofactor.mark_verified(request)
            if isinstance(device, StaticDevice):
                left = twofactor.recovery_codes_left(user)
                messages.warning(request, f"You used a recovery code; {left} left. Make new ones on your profile.")
            return redirect(_safe_next(request, next_url or request.POST.get("next", "")))
        lockout.login_failure_audit(request=request, username=user.get_username(), event="login.2fa_failed")
        form.add_error(
            "code",
            "That code was not accepted: it is wrong, was used already, or too many codes were tried "
            "(wait a little). Use the current code from your app or an unused recovery code.",
        )
    return render(request, "accounts/2fa_verify.html", {"form": form, "next": next_url})


@login_not_required
@never_cache  # a key, codes: never kept by a browser or proxy cache
def enrol(request):
    """Set up an authenticator: QR code (and the secret as text), then a first code confirms it."""
    user, pending = _subject(request)
    if user is None:
        return _session_expired(request)
    # Replacing a device needs the old one first: a session (or a pending sign-in) that has not
    # passed the existing second factor must not swap in a device of its own.
    if twofactor.has_device(user) and (pending or not twofactor.verified_within(request.session, 10 * 60)):
        return redirect(f"{_verify_url()}?next=/accounts/2fa/enrol")
    device = twofactor.totp_enrol_start(user=user)
    form = EnrolCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = twofactor.totp_enrol_confirm(
                user=user, device=device, code=form.cleaned_data["code"], request=request
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            next_url = twofactor.pending_next(request) if pending else "/accounts/2fa/"
            if pending:
                twofactor.pending_finish(request, user)
            else:
                twofactor.mark_verified(request)
            request.session[SESSION_NEW_CODES] = {"codes": codes, "next": next_url}
            return redirect("accounts:2fa-recovery-codes")
    context = {
        "form": form,
        "qr_svg": twofactor.totp_qr_svg(device),
        "secret": twofactor.totp_secret_text(device),
        "required": twofactor.two_factor_required(user),
        "pending": pending,
    }
    return render(request, "accounts/2fa_enrol.html", context)


@login_not_required
@never_cache  # a key, codes: never kept by a browser or proxy cache
def recovery_codes(request):
    """The recovery codes just made, shown this once."""
    shown = request.session.pop(SESSION_NEW_CODES, None)
    if not shown or not request.user.is_authenticated:
        return redirect("accounts:2fa" if request.user.is_authenticated else "accounts:login")
    next_url = _safe_next(request, shown.get("next", ""))
    return render(request, "accounts/2fa_recovery_codes.html", {"codes": shown["codes"], "next": next_url})


def settings_page(request):
    """The user's own two-factor settings (linked from the profile page)."""
    user = request.user
    context = {
        "enrolled": twofactor.has_device(user),
        "required": twofactor.two_factor_required(user),
        "codes_left": twofactor.recovery_codes_left(user),
    }
    return render(request, "accounts/2fa.html", context)


def _fresh_or_verify(request):
    """Changing one's factors needs a second factor passed in the last ten minutes."""
    if twofactor.verified_within(request.session, 10 * 60):
        return None
    messages.info(request, "Confirm with a code first: changing your second factor needs a fresh one.")
    return redirect(f"{_verify_url()}?next=/accounts/2fa/")


@require_POST
@never_cache
def recovery_codes_new(request):
    if not twofactor.has_device(request.user):
        messages.error(request, "Set up an authenticator first; recovery codes come with it.")
        return redirect("accounts:2fa")
    detour = _fresh_or_verify(request)
    if detour is not None:
        return detour
    codes = twofactor.recovery_codes_issue(user=request.user, request=request, audit=True)
    request.session[SESSION_NEW_CODES] = {"codes": codes, "next": "/accounts/2fa/"}
    return redirect("accounts:2fa-recovery-codes")


@require_POST
def remove(request):
    detour = _fresh_or_verify(request)
    if detour is not None:
        return detour
    try:
        twofactor.two_factor_remove(user=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Two-factor sign-in is off for your account.")
    return redirect("accounts:2fa")


def lockouts(request):
    """Platform admins: who is locked out now, with an unlock button (anyone else: 404)."""
    rows = lockout.lockouts_visible(request.user)[:500]  # the newest; each row unlocks its username
    return render(request, "accounts/lockouts.html", {"rows": rows, "message": lockout.lockout_message()})


@require_POST
def lockout_unlock(request):
    lockout.lockouts_visible(request.user)  # 404 for anyone but a platform admin
    form = UnlockForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Name the username to unlock.")
        return redirect("accounts:lockouts")
    username = form.cleaned_data["username"]
    lockout.lockout_release(actor=request.user, username=username, request=request)
    messages.success(request, f"{username} is unlocked and may sign in again.")
    return redirect("accounts:lockouts")
