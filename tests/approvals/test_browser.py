"""In a real browser on a phone-size screen (360x740): the approver's bell lights up live when a
request reaches them, they open the evidence page from it and approve there; the page fits the
screen and prints without the navigation or the buttons."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from apps.accounts import roles
from apps.approvals import selectors, services
from apps.approvals.models import PromotionRequest
from apps.catalog.models import Alias
from apps.core.audit import system_user
from apps.core.realtime import flush_sends
from apps.notifications.services import notify
from tests.approvals.test_pages import make_world
from tests.browser import SCREENSHOTS, screenshot
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 360, "height": 740}


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def _sign_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct-horse-battery-staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _view(page, name: str) -> None:
    """What the phone shows now (the full-page screenshots are too tall to read)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_approver_on_a_phone_decides_from_the_evidence_page(portal_server, phone):
    owner = make_user("maya", roles.ML_ENGINEERS)
    Group.objects.get_or_create(name=roles.APPROVERS)
    make_user("boss", roles.APPROVERS)
    world = make_world(owner, run_checks=False)
    promotion = world["promotion"]

    _sign_in(phone, portal_server, "boss")
    phone.goto(f"{portal_server}/approvals/")
    count = phone.locator("[data-role=bell-count]")
    assert count.is_hidden()
    phone.wait_for_timeout(500)  # the bell's socket subscribes

    # the checks pass (as the worker would run them): the approvers are notified, live
    services.promotion_run_checks(promotion=promotion, actor=system_user())
    flush_sends(3)
    count.wait_for(state="visible")
    assert count.inner_text() == "1"
    toast = phone.locator("[data-role=bell-toast]")
    toast.wait_for(state="visible")
    assert "Your decision: promote credit-risk v2 to production" in toast.inner_text()
    assert phone.locator("[data-role=inbox-changed]").is_visible()  # the inbox offers the fresh list
    _view(phone, "approvals-phone-bell-live")

    # from the bell's list to the evidence page
    phone.click("[data-role=bell-button]")
    item = phone.locator("[data-role=bell-list] a.dropdown-item").first
    item.wait_for(state="visible")
    menu = phone.locator("[data-role=bell-menu]").bounding_box()
    assert menu["x"] >= 0 and menu["x"] + menu["width"] <= PHONE["width"], menu
    _view(phone, "approvals-phone-bell-open")
    item.click()
    phone.wait_for_url(f"{portal_server}/approvals/requests/{promotion.pk}/")
    assert phone.locator("#metric-table").is_visible()
    phone.locator("#metric-chart .main-svg").first.wait_for(state="attached")
    assert phone.locator("[data-check=open_alerts]").inner_text().count("severity at least") == 1
    assert _fits(phone), "the evidence page is wider than a 360 px screen"
    screenshot(phone, "approvals-phone-evidence")
    _view(phone, "approvals-phone-evidence-top")
    phone.locator("#decide").scroll_into_view_if_needed()
    _view(phone, "approvals-phone-evidence-decide")

    # print: no navigation, no buttons, the evidence stays
    phone.emulate_media(media="print")
    assert phone.locator("nav.navbar").is_hidden() and phone.locator("[data-role=decision-form]").is_hidden()
    assert phone.locator("#metric-table").is_visible()
    screenshot(phone, "approvals-print")
    phone.emulate_media(media="screen")

    phone.fill("#id_comment", "Holdout AUC is better; rollback plan is fine.")
    phone.click("[data-role=decision-form] button[value=approve]")
    phone.wait_for_url(f"{portal_server}/approvals/requests/{promotion.pk}/")
    assert "Approved and promoted" in phone.locator("[data-role=state]").first.inner_text()
    assert phone.locator("[data-decision=approve]").is_visible()
    assert _fits(phone)
    _view(phone, "approvals-phone-decided")
    promotion.refresh_from_db()
    assert promotion.state == PromotionRequest.State.PROMOTED
    assert Alias.objects.get(model=world["model"], name="production").version == world["v2"]
    assert promotion.decisions.get().comment == "Holdout AUC is better; rollback plan is fine."
    for path, name in (
        ("/approvals/", "inbox"),
        ("/approvals/requests/", "list"),
        ("/notifications/", "notifications"),
    ):
        phone.goto(f"{portal_server}{path}")
        assert _fits(phone), f"{path} is wider than a 360 px screen"
        _view(phone, f"approvals-phone-{name}")


def test_desktop_pages_request_form_evidence_list_and_notifications(portal_server, page, login):
    """The requester files from the version page; the pages at desktop width (screenshots)."""
    owner = make_user("maya", roles.ML_ENGINEERS)
    world = make_world(owner, run_checks=False)
    world["promotion"].delete()
    login("maya")
    page.goto(f"{portal_server}/models/credit-risk/versions/2/")
    page.click("[data-role=request-promotion]")
    page.fill("#id_justification", "Better AUC on the March 2026 holdout.")
    page.select_option("#id_risk", "low")
    page.fill("#id_rollback_plan", "Roll production back to v1.")
    screenshot(page, "approvals-desktop-form")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{portal_server}/approvals/requests/*/")
    promotion = PromotionRequest.objects.get()
    assert promotion.rollback_plan == "Roll production back to v1."
    assert page.locator("[data-role=checks-running]").is_visible()
    services.promotion_run_checks(promotion=promotion, actor=system_user())
    # the page asks while the checks run and reloads once they are done
    page.locator("#evidence-page[data-state=awaiting_approval]").wait_for(state="attached")
    assert page.locator("[data-role=checks-running]").count() == 0
    page.locator("#metric-chart .main-svg").first.wait_for(state="attached")
    screenshot(page, "approvals-desktop-evidence")
    page.goto(f"{portal_server}/approvals/requests/?requested_by=me")
    assert page.locator(f"[data-promotion='{promotion.pk}']").is_visible()
    screenshot(page, "approvals-desktop-list")
    notify(recipients=[owner], kind="job.finished", title="Training job 7 finished", body="val_auc 0.9187", email=False)
    page.goto(f"{portal_server}/notifications/")
    assert page.locator("text=Training job 7 finished").is_visible()
    screenshot(page, "notifications-desktop-list")


def test_an_open_evidence_page_refreshes_when_another_approver_decides(portal_server, page, login):
    """An approver reading the evidence page sees another approver's decision without reloading;
    while they write a comment, the page says it changed instead of reloading their text away."""
    owner = make_user("maya", roles.ML_ENGINEERS)
    first = make_user("boss", roles.APPROVERS)
    make_user("boss2", roles.APPROVERS)
    world = make_world(owner, approvals_required=2)
    promotion = world["promotion"]
    login("boss2")
    page.goto(f"{portal_server}/approvals/requests/{promotion.pk}/")
    assert page.locator("[data-decision]").count() == 0
    page.wait_for_timeout(500)  # the bell's socket subscribes

    digest = selectors.evidence_for(promotion)["evidence_digest"]
    services.promotion_decide(
        actor=first, promotion=promotion, decision="approve", comment="Fine by me.", evidence_digest=digest
    )
    flush_sends(3)
    page.locator("[data-decision=approve]").wait_for(state="visible")  # reloaded by itself
    assert "1 of 2 approvals" in page.inner_text("main") and page.locator("#decide").is_visible()
    page.wait_for_timeout(500)  # the reloaded page's socket subscribes

    page.fill("#id_comment", "Reading the lineage first")
    services.promotion_withdraw(actor=owner, promotion=promotion)
    flush_sends(3)
    page.locator("[data-role=changed]").wait_for(state="visible")
    assert page.input_value("#id_comment") == "Reading the lineage first"
    screenshot(page, "approvals-desktop-evidence-changed")
