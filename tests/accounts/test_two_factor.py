"""Two-factor sign-in (issue 17): enrolment with a QR code, the code step after the password,
single-use recovery codes, and approvers and platform admins held at enrolment until they enrol."""

from __future__ import annotations

import pytest
from django.test import Client
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts import twofactor
from apps.core.models import AuditEntry
from tests.accounts.otp_helpers import enrolled, fresh_code, shown_codes, sign_in, signed_in, totp_code

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def enforced(settings):
    settings.PORTAL_2FA_ENFORCED = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # a wrong code may be followed at once by the right one
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


def test_enrolment_shows_a_qr_code_and_the_secret_and_a_first_code_confirms_it(owner):
    client = Client()
    client.force_login(owner)
    assert b"Set up two-factor sign-in" in client.get("/accounts/profile/").content  # the link on the profile
    page = client.get("/accounts/2fa/enrol")
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    assert page.status_code == 200
    qr = html.split('data-role="qr"', 1)[1].split("</div>", 1)[0]
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in qr and "<path" in qr and "data:" not in qr
    assert twofactor.totp_secret_text(device) in html and len(twofactor.totp_secret_text(device)) >= 32
    assert client.get("/accounts/2fa/enrol").content.decode().count(twofactor.totp_secret_text(device)) == 1

    wrong = client.post("/accounts/2fa/enrol", {"code": "000000" if totp_code(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and b"does not match" in wrong.content
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed

    done = client.post("/accounts/2fa/enrol", {"code": totp_code(device)})
    assert done.status_code == 302 and done["Location"] == "/accounts/2fa/recovery-codes"
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    codes = shown_codes(client.get("/accounts/2fa/recovery-codes").content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = list(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True))
    assert len(stored) == 10 and not set(codes) & set(stored)  # keyed hashes only (test_two_factor_sealed)
    assert client.get("/accounts/2fa/recovery-codes").status_code == 302  # shown once
    assert AuditEntry.objects.filter(additional_data__event="2fa.enrol", actor=owner).exists()
    assert b"Recovery codes left: <strong>10</strong>" in client.get("/accounts/2fa/").content


def test_sign_in_asks_for_the_code_after_the_password(owner):
    device, _ = enrolled(owner)
    client = Client()
    response = sign_in(client, "owner", next_url="/models/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/verify"
    assert not signed_in(client)  # the password alone signs nobody in
    assert not AuditEntry.objects.filter(additional_data__event="login", actor=owner).exists()

    bad = client.post("/accounts/2fa/verify", {"code": "12345"})
    assert bad.status_code == 200 and b"was not accepted" in bad.content and not signed_in(client)

    good = client.post("/accounts/2fa/verify", {"code": fresh_code(device)})
    assert good.status_code == 302 and good["Location"] == "/models/"
    assert signed_in(client)
    assert AuditEntry.objects.filter(additional_data__event="login", actor=owner).exists()


def test_a_used_code_is_refused(owner):
    device, _ = enrolled(owner)
    client = Client()
    sign_in(client, "owner")
    code = fresh_code(device)
    assert client.post("/accounts/2fa/verify", {"code": code}).status_code == 302
    client.post("/accounts/logout/")
    sign_in(client, "owner")
    assert client.post("/accounts/2fa/verify", {"code": code}).status_code == 200  # replay
    assert not signed_in(client)


def test_a_recovery_code_signs_in_once(owner):
    _, codes = enrolled(owner)
    client = Client()
    sign_in(client, "owner")
    response = client.post("/accounts/2fa/verify", {"code": codes[0].upper()}, follow=True)
    assert signed_in(client) and b"You used a recovery code; 9 left" in response.content
    client.post("/accounts/logout/")
    sign_in(client, "owner")
    assert client.post("/accounts/2fa/verify", {"code": codes[0]}).status_code == 200
    assert not signed_in(client)
    assert client.post("/accounts/2fa/verify", {"code": codes[1]}).status_code == 302 and signed_in(client)
    assert StaticToken.objects.filter(device__user=owner).count() == 8


def test_approver_without_a_device_is_sent_to_enrolment_at_sign_in(approver):
    client = Client()
    response = sign_in(client, "approver", next_url="/approvals/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/enrol"
    assert not signed_in(client)
    page = client.get("/accounts/2fa/enrol")
    assert page.status_code == 200 and b'data-role="2fa-required"' in page.content
    device = TOTPDevice.objects.get(user=approver, confirmed=False)
    assert client.post("/accounts/2fa/enrol", {"code": totp_code(device)})["Location"] == "/accounts/2fa/recovery-codes"
    codes_page = client.get("/accounts/2fa/recovery-codes")
    assert len(shown_codes(codes_page.content.decode())) == 10 and b'href="/approvals/"' in codes_page.content
    assert client.get("/approvals/").status_code == 200


def test_platform_admin_without_a_device_is_sent_to_enrolment_too(admin_user):
    assert sign_in(Client(), "platformadmin")["Location"] == "/accounts/2fa/enrol"


def test_a_signed_in_approver_without_a_device_can_do_nothing_else(approver):
    """Sessions made another way (the admin's sign-in form, single sign-on, before enforcement)."""
    client = Client()
    client.force_login(approver)
    response = client.get("/approvals/")
    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/enrol?next=%2Fapprovals%2F"
    api = client.get("/api/v1/me")
    assert api.status_code == 403 and api.json()["code"] == "two_factor_required"
    assert client.get("/accounts/2fa/enrol").status_code == 200
    device = TOTPDevice.objects.get(user=approver, confirmed=False)
    client.post("/accounts/2fa/enrol", {"code": totp_code(device)})
    assert client.get("/approvals/").status_code == 200


def test_a_session_of_a_device_holder_must_give_the_code(owner):
    device, _ = enrolled(owner)
    client = Client()
    client.force_login(owner)
    assert client.get("/models/")["Location"] == "/accounts/2fa/verify?next=%2Fmodels%2F"
    # nor may it swap in a device of its own
    assert client.get("/accounts/2fa/enrol")["Location"].startswith("/accounts/2fa/verify")
    assert client.post("/accounts/2fa/verify?next=/models/", {"code": fresh_code(device)})["Location"] == "/models/"
    assert client.get("/models/").status_code == 200


def test_engineers_are_not_required_and_enforcement_can_be_switched_off(owner, approver, settings):
    assert sign_in(Client(), "owner")["Location"] == "/"
    settings.PORTAL_2FA_ENFORCED = False
    client = Client()
    assert sign_in(client, "approver")["Location"] == "/" and signed_in(client)


def test_required_roles_come_from_the_setting(owner, approver, settings):
    settings.PORTAL_2FA_REQUIRED_ROLES = ["ml-engineers"]
    assert twofactor.two_factor_required(owner) and not twofactor.two_factor_required(approver)
    assert sign_in(Client(), "owner")["Location"] == "/accounts/2fa/enrol"


def test_a_required_user_cannot_turn_two_factor_off(approver):
    enrolled(approver)
    client = Client()
    sign_in(client, "approver")
    client.post("/accounts/2fa/verify", {"code": fresh_code(TOTPDevice.objects.get(user=approver))})
    client.post("/accounts/2fa/remove")
    assert TOTPDevice.objects.filter(user=approver, confirmed=True).exists()


def test_a_platform_admin_resets_a_lost_authenticator_and_it_is_audited(owner, admin_user, settings):
    settings.PORTAL_2FA_ENFORCED = False  # the admin here has no device of their own
    device, _ = enrolled(owner)
    client = Client()
    client.force_login(admin_user)
    response = client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not TOTPDevice.objects.filter(pk=device.pk).exists()
    entry = AuditEntry.objects.get(additional_data__event="2fa.device_removed")
    assert entry.actor == admin_user and entry.object_repr == "owner"
    # and the owner signs in with the password alone again, until they enrol anew
    assert sign_in(Client(), "owner")["Location"] == "/"
