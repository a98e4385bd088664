"""Two-factor authentication: TOTP devices (django-otp's otp_totp) and one-time recovery codes
(otp_static), who must use them, and what a session remembers of a passed second factor.

Secrets are sealed in the vault (`apps.accounts.sealed_otp`): devices are created, verified and
rendered only through the proxies `SealedTOTPDevice` / `SealedStaticDevice`, whose rows hold no
seed and no recovery code in clear.

Reads and writes for one user's own factors; the pages are in `apps.accounts.twofactor_views`,
the step-up rule for approval decisions in `apps.accounts.stepup`. A session that passed a second
factor holds its time (`SESSION_VERIFIED_AT`); the sign-in keeps a password-checked user *pending*
(`SESSION_PENDING`, not signed in) until the code is given or, for a user who must have 2FA and
has no device yet, until enrolment is confirmed.
"""

from __future__ import annotations

import time
from base64 import b32encode
from io import BytesIO

import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import login as auth_login
from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import sealed_otp
from apps.accounts.models import SealedStaticDevice, SealedTOTPDevice
from apps.accounts.principals import groups_of
from apps.core.audit import audit_event
from apps.core.permissions import is_active_user, is_platform_admin

SESSION_VERIFIED_AT = "portal_2fa_at"  # unix time of the last second factor passed in this session
SESSION_NO_DEVICE = "portal_2fa_none"  # checked once: this session's user has no device
SESSION_PENDING = "portal_2fa_pending"  # {"uid", "backend", "at", "next"}: password given, code not yet
TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
DEFAULT_BACKEND = "apps.accounts.principals.PortalModelBackend"


# --- who --------------------------------------------------------------------------------------


def two_factor_required(user) -> bool:
    """Must `user` sign in with a second factor (and enrol one)? Holders of a role listed in
    PORTAL_2FA_REQUIRED_ROLES (platform admins also by their admin standing), while
    PORTAL_2FA_ENFORCED is on. Reads the roles the caller cache holds: no query per request."""
    if not settings.PORTAL_2FA_ENFORCED or not is_active_user(user):
        return False
    required = set(settings.PORTAL_2FA_REQUIRED_ROLES)
    if "platform-admins" in required and is_platform_admin(user):
        return True
    return any(name in required for name, _team in groups_of(user))


def has_device(user) -> bool:
    """Has `user` a confirmed authenticator (a TOTP device)? Recovery codes alone do not count."""
    return SealedTOTPDevice.objects.filter(user_id=user.pk, confirmed=True).exists()


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True).count()


# --- enrolment --------------------------------------------------------------------------------


def totp_enrol_start(*, user) -> SealedTOTPDevice:
    """The user's device being enrolled: one unconfirmed device, reused while the page is reloaded
    (so the QR code already scanned stays valid); a confirmed one stays until the new one is. Its
    seed is sealed in the vault."""
    device = (
        SealedTOTPDevice.objects.filter(user_id=user.pk, confirmed=False, seal__isnull=False).order_by("pk").first()
    )
    return device or sealed_otp.totp_device_create(user=user, name=TOTP_NAME, confirmed=False)


def totp_qr_svg(device: SealedTOTPDevice) -> str:
    """The otpauth:// URL of `device` as inline SVG markup (no script, no data: URL, no style)."""
    out = BytesIO()
    segno.make(sealed_otp.as_sealed(device).config_url, error="m").save(
        out, kind="svg", scale=4, light="#fff", xmldecl=False, svgns=True, nl=False
    )
    return out.getvalue().decode()


def totp_secret_text(device: SealedTOTPDevice) -> str:
    """The secret in base32, grouped by four for typing into an app by hand."""
    secret = b32encode(sealed_otp.as_sealed(device).bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


@transaction.atomic
def totp_enrol_confirm(*, user, device: SealedTOTPDevice, code: str, request=None) -> list[str]:
    """Confirm `device` with a first code from the app; replaces any earlier authenticator and
    returns fresh recovery codes (shown once). A wrong code: ValidationError on `code`."""
    device = sealed_otp.as_sealed(device)
    if device.user_id != user.pk or device.confirmed:
        raise ValidationError({"code": ["Start the enrolment again: this setup is no longer open."]})
    if not device.verify_token((code or "").strip().replace(" ", "")):
        raise ValidationError(
            {"code": ["That code does not match. Type the 6 digits your app shows now (they change every 30 s)."]}
        )
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user_id=user.pk).exclude(pk=device.pk).delete()  # seals and blobs go too
    codes = recovery_codes_issue(user=user)
    audit_event(actor=user, event="2fa.enrol", obj=user, request=request)
    return codes


@transaction.atomic
def recovery_codes_issue(*, user, request=None, audit: bool = False) -> list[str]:
    """Replace the user's recovery codes with PORTAL_2FA_RECOVERY_CODES new single-use ones (only
    their keyed hashes are stored; the codes are returned to be shown once)."""
    StaticDevice.objects.filter(user_id=user.pk).delete()
    codes = []
    while len(codes) < settings.PORTAL_2FA_RECOVERY_CODES:
        code = StaticToken.random_token()
        if code not in codes:
            codes.append(code)
    sealed_otp.recovery_set_create(user=user, name=RECOVERY_NAME, codes=codes)
    if audit:
        audit_event(actor=user, event="2fa.recovery_codes", obj=user, request=request)
    return codes


@transaction.atomic
def two_factor_remove(*, user, request=None) -> None:
    """Remove the user's authenticator and recovery codes (refused to those who must keep 2FA)."""
    if two_factor_required(user):
        raise ValidationError("Your role requires two-factor sign-in; enrol a new device instead of removing it.")
    TOTPDevice.objects.filter(user_id=user.pk).delete()
    StaticDevice.objects.filter(user_id=user.pk).delete()
    audit_event(actor=user, event="2fa.remove", obj=user, request=request)


# --- verification -----------------------------------------------------------------------------


def second_factor_check(user, code: str, *, totp_only: bool = False):
    """The device that accepts `code` (a TOTP code, or one recovery code, used up), or None.
    django-otp throttles each device after failures and refuses a TOTP code used before. Devices
    are locked while they check a code (two requests cannot use one recovery code twice)."""
    code = (code or "").strip().replace(" ", "").replace("-", "").lower()
    if not code or not is_active_user(user):
        return None
    models = (SealedTOTPDevice,) if totp_only else (SealedTOTPDevice, SealedStaticDevice)
    with transaction.atomic():
        for model in models:
            sealed = model.objects.filter(user_id=user.pk, confirmed=True, seal__isnull=False)  # none: no secret
            for device in sealed.order_by("pk").select_for_update(of=("self",)):
                if device.verify_token(code):
                    return device
    return None


def mark_verified(request) -> None:
    """This session passed a second factor now (sign-in, enrolment or step-up)."""
    mark_session_verified(request.session)


def mark_session_verified(session) -> None:
    session[SESSION_VERIFIED_AT] = time.time()


def verified_within(session, max_age_s: float) -> bool:
    at = session.get(SESSION_VERIFIED_AT) if session is not None else None
    return at is not None and time.time() - float(at) <= max_age_s


# --- the pending sign-in (password given, second factor not yet) ------------------------------


def pending_start(request, user, *, next_url: str) -> None:
    request.session[SESSION_PENDING] = {
        "uid": user.pk,
        "backend": getattr(user, "backend", None) or DEFAULT_BACKEND,
        "at": time.time(),
        "next": next_url,
    }


def pending_user(request):
    """The user whose password was accepted in this session and who owes a second factor, or None
    (also once PORTAL_2FA_PENDING_S has passed: then the password must be given again)."""
    pending = request.session.get(SESSION_PENDING)
    if not pending:
        return None
    if time.time() - float(pending.get("at", 0)) > settings.PORTAL_2FA_PENDING_S:
        request.session.pop(SESSION_PENDING, None)
        return None
    user = get_user_model().objects.filter(pk=pending.get("uid"), is_active=True).first()
    if user is not None:
        user.backend = pending.get("backend")
    return user


def pending_next(request) -> str:
    return (request.session.get(SESSION_PENDING) or {}).get("next") or ""


def pending_finish(request, user) -> None:
    """Sign the pending user in, with the second factor marked as passed now."""
    request.session.pop(SESSION_PENDING, None)
    auth_login(request, user, backend=user.backend)
    mark_verified(request)
