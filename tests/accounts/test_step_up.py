"""Step-up before an approval decision (issue 17): a second factor within PORTAL_STEPUP_MAX_AGE_S,
on the page (a code page that re-sends the typed decision) and in the API (`X-OTP` or `otp`, else
403 `step_up_required`), one rule in apps/accounts/stepup.py."""

from __future__ import annotations

import pytest

from apps.approvals.models import PromotionRequest
from apps.core.models import AuditEntry
from tests.accounts.otp_helpers import age_second_factor, enrolled, fresh_code, signed_in_with_code
from tests.approvals.conftest import digest_of, sent_tasks  # noqa: F401  (sent_tasks: autouse)
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db
COMMENT = "Checked the AUC delta and the card; fine to ship."


@pytest.fixture(autouse=True)
def enforced(settings):
    settings.PORTAL_2FA_ENFORCED = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.PORTAL_STEPUP_MAX_AGE_S = 300


def decide_url(promotion) -> str:
    return f"/approvals/requests/{promotion.pk}/decide/"


def test_a_stale_second_factor_asks_for_a_code_and_keeps_the_typed_decision(awaiting, approvers):
    boss = approvers[0]
    device, _ = enrolled(boss)
    client = signed_in_with_code(boss, device)
    age_second_factor(client, 301)
    digest = digest_of(awaiting)
    body = {"decision": "approve", "comment": COMMENT, "evidence_digest": digest}

    refused = client.post(decide_url(awaiting), body)
    html = refused.content.decode()
    assert refused.status_code == 403 and 'data-role="step-up-form"' in html
    assert f'value="{COMMENT}"' in html and 'name="decision" value="approve"' in html and digest in html
    assert not awaiting.decisions.exists()

    wrong = client.post(decide_url(awaiting), {**body, "otp": "000001"})
    assert wrong.status_code == 403 and b"was not accepted" in wrong.content and not awaiting.decisions.exists()
    assert (
        AuditEntry.objects.filter(additional_data__event="2fa.step_up_failed", object_repr=boss.username).count() == 1
    )

    done = client.post(decide_url(awaiting), {**body, "otp": fresh_code(device)})
    assert done.status_code == 302
    decision = awaiting.decisions.get()
    assert decision.approver == boss and decision.comment == COMMENT
    assert AuditEntry.objects.filter(additional_data__event="2fa.step_up", actor=boss).exists()


def test_a_fresh_second_factor_decides_at_once(awaiting, approvers):
    boss = approvers[0]
    device, _ = enrolled(boss)
    client = signed_in_with_code(boss, device)
    body = {"decision": "approve", "comment": "", "evidence_digest": digest_of(awaiting)}
    assert client.post(decide_url(awaiting), body).status_code == 302
    assert awaiting.decisions.count() == 1


def test_the_api_answers_step_up_required_without_a_current_code(awaiting, approvers):
    boss = approvers[0]
    device, _ = enrolled(boss)
    api = api_client_for(boss)
    url = f"/api/v1/promotions/{awaiting.pk}/approve"
    body = {"evidence_digest": digest_of(awaiting), "comment": "ok"}

    refused = api.post(url, body, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"
    assert "X-OTP" in refused.json()["detail"]
    wrong = api.post(url, body, format="json", HTTP_X_OTP="000001")
    assert wrong.status_code == 403 and wrong.json()["code"] == "step_up_required"
    assert not awaiting.decisions.exists()

    ok = api.post(url, body, format="json", HTTP_X_OTP=fresh_code(device))
    assert ok.status_code == 200, ok.content
    assert awaiting.decisions.get().approver == boss


def test_the_api_takes_the_code_in_the_body_too(awaiting, approvers):
    boss = approvers[1]
    device, _ = enrolled(boss)
    body = {"evidence_digest": digest_of(awaiting), "otp": fresh_code(device)}
    assert (
        api_client_for(boss).post(f"/api/v1/promotions/{awaiting.pk}/approve", body, format="json").status_code == 200
    )


def test_an_approver_token_without_a_device_is_told_to_enrol(awaiting, approvers):
    response = api_client_for(approvers[2]).post(
        f"/api/v1/promotions/{awaiting.pk}/reject",
        {"evidence_digest": digest_of(awaiting), "comment": "no"},
        format="json",
    )
    assert response.status_code == 403 and response.json()["code"] == "step_up_required"
    assert "enrol" in response.json()["detail"]
    assert PromotionRequest.objects.get(pk=awaiting.pk).decisions.count() == 0


def test_no_step_up_when_enforcement_is_off(awaiting, approvers, settings):
    settings.PORTAL_2FA_ENFORCED = False
    response = api_client_for(approvers[0]).post(
        f"/api/v1/promotions/{awaiting.pk}/approve", {"evidence_digest": digest_of(awaiting)}, format="json"
    )
    assert response.status_code == 200
