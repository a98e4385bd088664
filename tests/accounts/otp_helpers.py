"""Helpers for the two-factor tests: real TOTP codes computed from a device's seed (sealed in the
vault: read through the `SealedTOTPDevice` proxy, as an authenticator app got it from the QR code),
sign-in steps."""

from __future__ import annotations

import re
import time

from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import twofactor
from apps.accounts.models import SealedTOTPDevice

PASSWORD = "correct-horse-battery-staple"


def totp_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (or `steps_ahead` 30 s steps later)."""
    if not isinstance(device, SealedTOTPDevice):
        device = SealedTOTPDevice.objects.get(pk=device.pk)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def fresh_code(device: TOTPDevice) -> str:
    """A code the device has not accepted yet: django-otp refuses a time step used before, so a
    test that needs several codes within 30 s forgets the last step used (as waiting would)."""
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    device.refresh_from_db()
    return totp_code(device)


def enrolled(user) -> tuple[TOTPDevice, list[str]]:
    """Give `user` a confirmed authenticator and recovery codes through the services."""
    device = twofactor.totp_enrol_start(user=user)
    codes = twofactor.totp_enrol_confirm(user=user, device=device, code=totp_code(device))
    device.refresh_from_db()
    return device, codes


def sign_in(client, username: str, next_url: str = ""):
    return client.post("/accounts/login/", {"username": username, "password": PASSWORD, "next": next_url})


def signed_in(client) -> bool:
    """Does the client's session belong to a signed-in user (the profile page answers 200)?"""
    return client.get("/accounts/profile/").status_code == 200


def shown_codes(html: str) -> list[str]:
    block = html.split('data-role="recovery-codes"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r"<li[^>]*>([a-z2-7]+)</li>", block)


def signed_in_with_code(user, device) -> Client:
    """A test client signed in through the password and code pages."""
    client = Client()
    sign_in(client, user.username)
    assert client.post("/accounts/2fa/verify", {"code": fresh_code(device)}).status_code == 302
    return client


def age_second_factor(client, seconds: float) -> None:
    """Make the session's last second factor `seconds` old."""
    session = client.session
    session[twofactor.SESSION_VERIFIED_AT] = time.time() - seconds
    session.save()
