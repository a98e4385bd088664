import pytest

from apps.accounts import roles
from tests.browser import screenshot
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_create_a_token_and_see_it_once(portal_server, page, login):
    make_user("maya", roles.ML_ENGINEERS)
    page.goto(f"{portal_server}/")
    assert "/accounts/login/" in page.url  # deny by default
    page.fill("input[name=username]", "maya")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".alert-danger").is_visible()
    login("maya")
    assert page.locator("text=Welcome").is_visible()
    screenshot(page, "dashboard")
    page.click("text=maya")
    page.fill("input[name=name]", "nightly script")
    page.check("input[value=write]")
    page.click("text=Create token")
    key = page.locator("#new-token").inner_text()
    assert key.startswith("ptk_")
    screenshot(page, "profile-token")
    page.reload()
    assert page.locator("#new-token").count() == 0
    assert page.locator("text=nightly script").is_visible()
    page.click("text=Revoke")
    assert page.locator("text=revoked").first.is_visible()


def test_auditor_filters_and_verifies_the_trail(portal_server, page, login):
    make_user("noor", roles.AUDITORS)
    login("noor")
    page.goto(f"{portal_server}/audit/")
    page.fill("input[name=event]", "login")
    page.click("text=Filter")
    assert page.locator("tbody tr").count() >= 1
    page.click("text=Verify hash chain")
    assert page.locator("text=The chain is intact").is_visible()
    screenshot(page, "audit")
