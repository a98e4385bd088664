"""Approval pages: the inbox, the list, the request form (from a version page) and the evidence
page, where approvers decide with the digest the page showed; withdraw and roll back there too."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import Group

from apps.accounts import roles
from apps.approvals import services
from apps.approvals.models import GatePolicy, PromotionRequest
from apps.catalog import services as catalog
from apps.catalog.models import Alias
from apps.core.audit import system_user
from apps.notifications.models import Notification
from tests.access.objects import onnx_bytes
from tests.conftest import make_user, page_client_for

pytestmark = pytest.mark.django_db

CHECKS = [
    {"name": "metric_threshold", "params": {"metric": "val_auc", "max_drop": 0.005}},
    {"name": "lineage", "params": {}},
    {"name": "open_alerts", "params": {}},
]
LINEAGE = {"run_id": "41", "training_set": "loans-2024", "training_data_digest": "sha256:" + "ab" * 32}


def register(owner, model, metrics: dict, lineage=None):
    data = onnx_bytes()
    return catalog.version_register(
        model=model, actor=owner, artifact=io.BytesIO(data), artifact_size=len(data), metrics=metrics, lineage=lineage
    )


def make_world(owner, *, checks=None, approvals_required: int = 1, run_checks: bool = True, name="credit-risk"):
    """A model with v1 behind a protected `production` alias, v2 better, a policy for the model
    (approvers group, `approvals_required`, `checks`) and owner's request to promote v2."""
    Group.objects.get_or_create(name=roles.APPROVERS)
    model = catalog.model_create(actor=owner, name=name, description="Scores loan applications")
    v1 = register(owner, model, {"val_auc": 0.9012, "val_loss": 0.3123}, LINEAGE)
    v2 = register(owner, model, {"val_auc": 0.9187, "val_loss": 0.2871, "epochs": 12}, LINEAGE)
    Alias.objects.create(model=model, name="production", version=v1, protected=True, moved_by=owner)
    GatePolicy.objects.update_or_create(
        model=model,
        alias="production",
        defaults={
            "approver_groups": [roles.APPROVERS],
            "approvals_required": approvals_required,
            "checks": CHECKS if checks is None else checks,
        },
    )
    promotion = services.promotion_request(
        actor=owner,
        version=v2,
        target_alias="production",
        justification="Better AUC on the March 2026 holdout.",
        change={"type": "normal", "risk": "low", "impact": "Loan scoring API", "rollback_plan": "Roll back to v1."},
    )
    if run_checks:
        promotion = services.promotion_run_checks(promotion=promotion, actor=system_user())
    return {"model": model, "v1": v1, "v2": v2, "promotion": promotion}


def digest_on(page) -> str:
    return re.search(rb'name="evidence_digest" value="([0-9a-f]{64})"', page.content).group(1).decode()


@pytest.fixture
def world(owner):
    return make_world(owner)


@pytest.fixture
def boss(db):
    """An approver (the approvers role) who neither requested nor built the version."""
    Group.objects.get_or_create(name=roles.APPROVERS)
    return make_user("boss", roles.APPROVERS)


def test_evidence_page_shows_metrics_checks_card_change_lineage_history(world, boss):
    p = world["promotion"]
    assert p.state == PromotionRequest.State.AWAITING_APPROVAL
    page = page_client_for(boss).get(f"/approvals/requests/{p.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    # the metric table: candidate against the version behind the alias, with the delta
    assert "val_auc" in html and "0.9187" in html and "0.9012" in html and "+0.0175" in html
    assert 'id="metric-chart"' in html and 'id="chart-data"' in html and "plotly.min.js" in html
    # every check with its rule and evidence; open_alerts names the severity it looked for
    assert 'data-check="metric_threshold"' in html and 'data-check="open_alerts"' in html
    assert "no open critical alert (or worse) on the model or its endpoints" in html
    assert "Better AUC on the March 2026 holdout." in html and "Roll back to v1." in html
    assert "loans-2024" in html and "Model card" in html and "promotion.request" in html
    assert digest_on(page) == p.evidence_digest
    assert 'data-role="decision-form"' in html and "approvals.css" in html


def test_approver_approves_from_the_page_and_the_alias_moves(world, boss, owner):
    p = world["promotion"]
    client = page_client_for(boss)
    digest = digest_on(client.get(f"/approvals/requests/{p.pk}/"))
    response = client.post(
        f"/approvals/requests/{p.pk}/decide/", {"decision": "approve", "comment": "", "evidence_digest": digest}
    )
    assert response.status_code == 302 and response["Location"] == f"/approvals/requests/{p.pk}/"
    p.refresh_from_db()
    assert p.state == PromotionRequest.State.PROMOTED
    assert Alias.objects.get(model=world["model"], name="production").version == world["v2"]
    assert p.decisions.get().evidence_digest == digest
    page = client.get(response["Location"])
    assert b"Approved. The request is now approved and promoted." in page.content
    assert b'data-role="decision-form"' not in page.content
    assert Notification.objects.filter(recipient=owner, kind="promotion.promoted").exists()


def test_reject_needs_a_comment_and_stale_evidence_is_refused(world, boss):
    p = world["promotion"]
    client = page_client_for(boss)
    digest = digest_on(client.get(f"/approvals/requests/{p.pk}/"))
    url = f"/approvals/requests/{p.pk}/decide/"
    response = client.post(url, {"decision": "reject", "comment": " ", "evidence_digest": digest})
    assert response.status_code == 400 and b"comment is required to reject" in response.content
    response = client.post(url, {"decision": "approve", "evidence_digest": "0" * 64}, follow=True)
    assert b"Not recorded: The evidence changed" in response.content
    assert not p.decisions.exists()
    client.post(url, {"decision": "reject", "comment": "Holdout too small.", "evidence_digest": digest})
    p.refresh_from_db()
    assert p.state == PromotionRequest.State.REJECTED and p.decisions.get().comment == "Holdout too small."


def test_requester_cannot_decide_but_may_withdraw(world, owner):
    owner.groups.add(Group.objects.get(name=roles.APPROVERS))  # even as an approver: separation of duties
    p = world["promotion"]
    client = page_client_for(owner)
    page = client.get(f"/approvals/requests/{p.pk}/")
    assert b'data-role="decision-form"' not in page.content and b"You requested this promotion" in page.content
    digest = p.evidence_digest
    assert (
        client.post(
            f"/approvals/requests/{p.pk}/decide/", {"decision": "approve", "evidence_digest": digest}
        ).status_code
        == 403
    )
    assert client.post(f"/approvals/requests/{p.pk}/withdraw/").status_code == 302
    p.refresh_from_db()
    assert p.state == PromotionRequest.State.WITHDRAWN


def test_approver_rolls_back_a_promotion_with_a_comment(world, boss):
    p = world["promotion"]
    client = page_client_for(boss)
    client.post(f"/approvals/requests/{p.pk}/decide/", {"decision": "approve", "evidence_digest": p.evidence_digest})
    page = client.get(f"/approvals/requests/{p.pk}/")
    assert b'data-role="rollback-form"' in page.content
    assert client.post(f"/approvals/requests/{p.pk}/rollback/", {"comment": ""}).status_code == 400
    assert client.post(f"/approvals/requests/{p.pk}/rollback/", {"comment": "Latency doubled."}).status_code == 302
    p.refresh_from_db()
    assert p.state == PromotionRequest.State.ROLLED_BACK
    assert Alias.objects.get(model=world["model"], name="production").version == world["v1"]


def test_failed_check_blocks_and_shows_its_evidence(owner, boss):
    data = make_world(owner, checks=[{"name": "model_card", "params": {}}, *CHECKS])
    p = data["promotion"]
    assert p.state == PromotionRequest.State.CHECKS_FAILED
    html = page_client_for(boss).get(f"/approvals/requests/{p.pk}/").content.decode()
    assert 'class="card mb-2 check check-failed" data-check="model_card"' in html
    assert 'data-role="decision-form"' not in html
    # at a glance, at the top: how many failed, and which, in words
    summary = re.search(r'data-role="check-summary">(.*?)</dd>', html, re.S).group(1)
    assert "1 failed" in summary and "Model card complete" in summary
    assert '<span class="text-success">3 passed</span>' in summary  # lineage, metric, no open alert


def test_no_rollback_form_where_the_rollback_would_be_refused(owner, boss):
    """A promotion that created the alias has nothing to roll back to; an earlier promotion of the
    alias is not the latest one. The page says why instead of offering a form that answers 409."""
    world = make_world(owner, run_checks=False)
    Alias.objects.filter(model=world["model"], name="production").delete()
    p = services.promotion_run_checks(promotion=world["promotion"], actor=system_user())
    client = page_client_for(boss)
    client.post(f"/approvals/requests/{p.pk}/decide/", {"decision": "approve", "evidence_digest": p.evidence_digest})
    p.refresh_from_db()
    assert p.state == PromotionRequest.State.PROMOTED and p.previous_version is None
    html = client.get(f"/approvals/requests/{p.pk}/").content.decode()
    assert 'data-role="rollback-form"' not in html
    assert "pointed to no version before this promotion" in html


def test_inbox_lists_awaiting_first_then_mine_then_recent(world, boss, owner, stranger):
    p = world["promotion"]
    html = page_client_for(boss).get("/approvals/").content.decode()
    awaiting = html.split('id="awaiting"')[1].split('id="mine"')[0]
    assert f'data-promotion="{p.pk}"' in awaiting
    mine = page_client_for(owner).get("/approvals/").content.decode().split('id="mine"')[1].split('id="recent"')[0]
    assert f'data-promotion="{p.pk}"' in mine
    assert f'data-promotion="{p.pk}"'.encode() not in page_client_for(stranger).get("/approvals/").content
    assert page_client_for(stranger).get(f"/approvals/requests/{p.pk}/").status_code == 404


def test_list_filters(world, boss, owner):
    p = world["promotion"]
    client = page_client_for(boss)
    assert f'data-promotion="{p.pk}"'.encode() in client.get("/approvals/requests/?awaiting=me").content
    assert f'data-promotion="{p.pk}"'.encode() not in client.get("/approvals/requests/?state=promoted").content
    assert (
        f'data-promotion="{p.pk}"'.encode()
        in page_client_for(owner).get("/approvals/requests/?requested_by=me").content
    )
    assert client.get("/approvals/requests/?state=nonsense").status_code == 200  # a bad filter is dropped


def test_request_form_from_the_version_page(owner, collaborator):
    data = make_world(owner, run_checks=False)
    data["promotion"].delete()
    client = page_client_for(owner)
    version_page = client.get(f"/models/credit-risk/versions/{data['v2'].version}/")
    assert b'data-role="request-promotion"' in version_page.content
    url = f"/approvals/requests/new/?model=credit-risk&version={data['v2'].version}"
    assert client.get(url).status_code == 200
    form = {
        "model": "credit-risk",
        "version": data["v2"].version,
        "target_alias": "production",
        "change_type": "normal",
        "risk": "low",
    }
    response = client.post("/approvals/requests/new/", {**form, "justification": ""})
    assert response.status_code == 200 and b"is-invalid" in response.content
    response = client.post("/approvals/requests/new/", {**form, "justification": "Better on March."})
    promotion = PromotionRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/approvals/requests/{promotion.pk}/"
    assert promotion.requested_by == owner and promotion.risk == "low"
    again = client.post("/approvals/requests/new/", {**form, "justification": "Again."})
    assert again.status_code == 200 and b"still open" in again.content  # the 409 shown on the form
    # someone who may not see the model gets 404; the version page offers them nothing
    assert page_client_for(collaborator).get(url).status_code == 404


def test_pages_take_a_bounded_number_of_queries(world, boss, django_assert_max_num_queries):
    """No query per row: the evidence page, the inbox, the list and the notifications page."""
    client = page_client_for(boss)
    pages = {f"/approvals/requests/{world['promotion'].pk}/": 20, "/approvals/": 10, "/approvals/requests/": 10}
    for url, most in {**pages, "/notifications/": 10}.items():
        client.get(url)  # sessions and content types cached
        with django_assert_max_num_queries(most):
            assert client.get(url).status_code == 200
