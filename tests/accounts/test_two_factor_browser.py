"""Two-factor sign-in in a real browser (issue 17), as an approver meets it on first sign-in: the
password, then enrolment (QR code and key, confirmed with a code computed from the key the page
shows, as an authenticator app would), recovery codes shown once, then the portal; next time the
code page after the password. The server runs with enforcement on; the browser reports no CSP
violation on any of these pages."""

from __future__ import annotations

import time
from base64 import b32decode

import pytest
from django_otp.oath import TOTP

from apps.accounts import roles
from tests.browser import screenshot
from tests.conftest import make_user, serve_portal

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct-horse-battery-staple"  # pragma: allowlist secret


@pytest.fixture(scope="module")
def enforcing_server(django_db_setup, django_db_blocker, tmp_path_factory):
    yield from serve_portal(django_db_blocker, tmp_path_factory, PORTAL_2FA_ENFORCED="true")


@pytest.fixture
def violations(page):
    found: list[str] = []
    page.context.expose_function("reportViolation", lambda text: found.append(text))
    page.context.add_init_script(
        'document.addEventListener("securitypolicyviolation", (e) => '
        "window.reportViolation(`${location.pathname}: ${e.violatedDirective} ${e.blockedURI}`));"
    )
    return found


def code_for(secret_text: str, *, steps_ahead: int = 0) -> str:
    secret = secret_text.replace(" ", "")
    totp = TOTP(b32decode(secret + "=" * (-len(secret) % 8)))
    totp.time = time.time() + steps_ahead * 30
    return f"{totp.token():06d}"


def sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_an_approver_enrols_on_first_sign_in_then_signs_in_with_a_code(enforcing_server, page, violations):
    make_user("ava", roles.APPROVERS)
    base = enforcing_server

    sign_in(page, base, "ava")
    page.wait_for_url(f"{base}/accounts/2fa/enrol**")
    assert page.locator("[data-role=qr] svg").is_visible()
    secret = page.locator("[data-role=secret]").inner_text()
    screenshot(page, "2fa-enrol")
    page.goto(f"{base}/")  # the portal does not open before enrolment: not signed in yet
    assert page.url.startswith(f"{base}/accounts/login/")
    response = page.goto(f"{base}/accounts/2fa/enrol")  # the password step is remembered for a few minutes
    assert "no-store" in response.headers["cache-control"]  # the key is never cached
    assert page.locator("[data-role=secret]").inner_text() == secret  # the same key, already scanned

    page.fill("input[name=code]", "000000" if code_for(secret) != "000000" else "111111")
    page.click("button[type=submit]")
    assert page.locator(".invalid-feedback, .alert-danger").first.is_visible()  # a wrong code says so
    page.fill("input[name=code]", code_for(secret))
    page.click("button[type=submit]")
    codes = page.locator("[data-role=recovery-codes] li")
    assert codes.count() == 10
    screenshot(page, "2fa-recovery-codes")

    page.context.clear_cookies()
    sign_in(page, base, "ava")
    page.wait_for_url(f"{base}/accounts/2fa/verify**")
    screenshot(page, "2fa-verify")
    page.fill("input[name=code]", code_for(secret, steps_ahead=1))  # the enrolment used this step's code
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert page.locator("nav").first.is_visible()
    assert violations == []
