"""Checks that no longer match the evidence: an alias moved by another request, an edited metric.

The checks record the evidence they ran on; a decision on evidence that changed since is refused
(409, in words) and sends the request back to its checks; a promotion or rollback re-checks every
other open request on the same alias at once. Approvals count within one round of checks.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.approvals import services
from apps.approvals.models import Decision, PromotionRequest
from apps.catalog import services as catalog
from apps.catalog.models import Alias
from apps.core.audit import verify_chain
from apps.core.errors import Conflict
from apps.core.models import AuditEntry
from apps.notifications.models import Notification
from tests.approvals.conftest import add_version, decide, digest_of, file_request, run_checks
from tests.conftest import api_client_for, page_client_for

pytestmark = pytest.mark.django_db


def production(model) -> int:
    return Alias.objects.get(model=model, name="production").version.version


def fresh(promotion) -> PromotionRequest:
    return PromotionRequest.objects.get(pk=promotion.pk)


def events(promotion) -> list[str]:
    found = AuditEntry.objects.filter(object_pk=str(promotion.pk), additional_data__event__startswith="promotion.")
    return [e.additional_data["event"] for e in found.order_by("pk")]


@pytest.fixture
def two_open(model, owner, artifact, v2, requester, approvers):
    """Two open production requests: v2 (val_auc 0.91) and v3 (0.95), both checked against v1."""
    v3 = add_version(model, owner, artifact, metrics={"val_auc": 0.95, "val_loss": 0.25})
    first, second = (run_checks(file_request(v, requester)) for v in (v2, v3))
    assert first.state == second.state == "awaiting_approval"
    return first, second


def test_v2_cannot_move_production_back_after_v3_is_promoted(
    model, two_open, approvers, requester, sent_tasks, django_capture_on_commit_callbacks
):
    for_v2, for_v3 = two_open
    shown_before = digest_of(for_v2)  # what an approver of v2 had loaded
    decide(for_v3, approvers[0])
    with django_capture_on_commit_callbacks(execute=True):
        decide(for_v3, approvers[1])
    assert production(model) == 3 and fresh(for_v3).state == "promoted"

    # v2 was checked against v1: it went back to its checks at once, and they were sent after commit
    again = fresh(for_v2)
    reason = f"production moved from v1 to v3 (promotion #{for_v3.pk})"
    assert again.state == "checks_running" and again.checks_round == 2 and again.recheck_reason == reason
    assert {c.status for c in again.checks.all()} == {"pending"}
    assert ("approvals.run_checks", [for_v2.pk]) in sent_tasks

    # neither the page the approver had loaded nor the current one lets v2 through
    for digest in (shown_before, None):
        with pytest.raises(Conflict, match="checks are running again because production moved from v1 to v3"):
            decide(for_v2, approvers[2], digest=digest)
    assert production(model) == 3

    # re-checked against v3 (0.95), v2 (0.91) fails the metric threshold: it cannot be approved
    again = run_checks(for_v2)
    assert again.state == "checks_failed"
    metric = again.checks.get(name="metric_threshold")
    assert metric.status == "failed" and metric.evidence["current_version"] == 3
    assert metric.evidence["current"] == 0.95 and metric.basis_digest == again.checks_basis_digest
    with pytest.raises(Conflict, match="checks failed"):
        decide(for_v2, approvers[2])
    assert production(model) == 3
    assert events(for_v2)[-2:] == ["promotion.recheck", "promotion.checks"]
    recheck = AuditEntry.objects.get(object_pk=str(for_v2.pk), additional_data__event="promotion.recheck")
    assert recheck.additional_data["reason"] == reason
    assert recheck.additional_data["previous_results"]["metric_threshold"]["evidence"]["current_version"] == 1
    assert verify_chain().ok


def test_after_the_recheck_against_v3_v2_follows_the_policy_and_old_approvals_no_longer_count(
    model, owner, artifact, v2, requester, approvers
):
    v3 = add_version(model, owner, artifact, metrics={"val_auc": 0.908, "val_loss": 0.29})
    for_v2 = run_checks(file_request(v2, requester))
    for_v3 = run_checks(file_request(v3, requester))
    decide(for_v2, approvers[0])  # 1 of 2, on checks against v1
    decide(for_v3, approvers[1])
    decide(for_v3, approvers[2])
    assert production(model) == 3 and fresh(for_v2).state == "checks_running"

    again = run_checks(for_v2)  # 0.91 >= 0.908 - 0.005: passes against v3
    assert again.state == "awaiting_approval"
    assert again.checks.get(name="metric_threshold").evidence["current_version"] == 3
    decide(for_v2, approvers[1])
    assert fresh(for_v2).state == "awaiting_approval", "approver1's approval was on the checks against v1"
    with pytest.raises(Conflict, match="already decided"):
        decide(for_v2, approvers[1])  # once per round
    decide(for_v2, approvers[0])  # approver1 decides again, on the fresh evidence
    promoted = fresh(for_v2)
    assert promoted.state == "promoted" and production(model) == 2 and promoted.previous_version.version == 3
    rounds = sorted(Decision.objects.filter(request=for_v2).values_list("approver__username", "round"))
    assert rounds == [("approver1", 1), ("approver1", 2), ("approver2", 2)]
    with pytest.raises(Conflict, match="approved and promoted; it takes no decisions"):
        decide(promoted, approvers[2])


def test_an_edited_candidate_metric_forces_a_recheck(
    model, owner, awaiting, approvers, requester, sent_tasks, django_capture_on_commit_callbacks
):
    catalog.version_update(version=awaiting.version, actor=owner, changes={"metrics": {"val_auc": 0.8}})
    # the approver loads the evidence now (a fresh digest): the checks still say val_auc 0.91 passed
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Conflict) as refused:
        decide(awaiting, approvers[0])
    said = str(refused.value.detail)
    assert "the candidate's metrics changed: val_auc 0.91 → 0.8, val_loss was removed" in said
    assert "running again" in said and "stale" not in said
    again = fresh(awaiting)
    assert again.state == "checks_running" and again.recheck_reason.startswith("the candidate's metrics changed")
    assert ("approvals.run_checks", [awaiting.pk]) in sent_tasks
    assert not Decision.objects.filter(request=awaiting).exists()
    assert run_checks(awaiting).state == "checks_failed"
    assert production(model) == 1


def test_an_edited_model_card_forces_a_recheck_and_the_stale_digest_409_stays(model, owner, awaiting, approvers):
    old = digest_of(awaiting)
    with pytest.raises(Conflict, match="stale"):
        decide(awaiting, approvers[0], digest="0" * 64)  # nothing changed: the plain stale-digest 409
    assert fresh(awaiting).state == "awaiting_approval"
    catalog.card_update(model=model, actor=owner, limitations="")
    with pytest.raises(Conflict, match=r"evidence_digest is stale.*the model card changed \(missing now: "):
        decide(awaiting, approvers[0], digest=old)
    assert run_checks(awaiting).state == "checks_failed"  # the card is no longer complete


def test_recheck_notifications(model, two_open, approvers, requester):
    for_v2, for_v3 = two_open
    decide(for_v3, approvers[0])
    decide(for_v3, approvers[1])
    told = Notification.objects.filter(kind="promotion.rechecking", object_id=for_v2.pk)
    recipients = sorted(told.values_list("recipient__username", flat=True))
    assert recipients == sorted([requester.username, "approver1", "approver2", "approver3"])
    note = told.first()
    assert note.title.startswith("Checks running again: credit-risk v2 to production")
    assert "Checks are running again because production moved from v1 to v3" in note.body
    assert note.url == reverse("approvals:request-detail", args=[for_v2.pk])
    assert not Notification.objects.filter(kind="promotion.rechecking", object_id=for_v3.pk).exists()
    # the re-check fails against v3: the approvers hear that too, not only the requester
    run_checks(for_v2)
    failed = Notification.objects.filter(object_id=for_v2.pk, title__startswith="Checks failed")
    assert {"approver1", requester.username} <= set(failed.values_list("recipient__username", flat=True))
    assert "Checked again because production moved from v1 to v3" in failed.first().body


def test_rollback_rechecks_the_other_open_requests(model, owner, artifact, two_open, approvers, admin_user):
    for_v2, for_v3 = two_open
    decide(for_v3, approvers[0])
    decide(for_v3, approvers[1])
    run_checks(for_v2)  # failed against v3
    services.promotion_rollback(actor=admin_user, promotion=fresh(for_v3), comment="Latency regression.")
    assert production(model) == 1
    again = fresh(for_v2)
    assert again.state == "checks_running" and again.checks_round == 3
    assert again.recheck_reason == f"production moved from v3 to v1 (rollback of #{for_v3.pk})"
    assert run_checks(for_v2).state == "awaiting_approval"  # against v1 again


def test_results_of_a_superseded_round_are_dropped(model, two_open, approvers):
    for_v2, for_v3 = two_open
    stale_copy = fresh(for_v2)  # what a slow worker loaded before v3 was promoted
    stale_copy.state = "checks_running"
    decide(for_v3, approvers[0])
    decide(for_v3, approvers[1])
    kept = services.promotion_run_checks(promotion=stale_copy, actor=approvers[0])
    assert kept.state == "checks_running" and {c.status for c in kept.checks.all()} == {"pending"}


def test_evidence_page_inbox_and_api_say_why_checks_run_again(model, two_open, approvers, requester):
    for_v2, for_v3 = two_open
    decide(for_v3, approvers[0])
    decide(for_v3, approvers[1])
    why = "Checks are running again because production moved from v1 to v3"
    page = page_client_for(approvers[2]).get(reverse("approvals:request-detail", args=[for_v2.pk]))
    assert page.status_code == 200 and why in page.content.decode()
    inbox = page_client_for(approvers[2]).get(reverse("approvals:inbox")).content.decode()
    assert 'id="rechecking"' in inbox and why in inbox
    mine = page_client_for(requester).get(reverse("approvals:inbox")).content.decode()
    assert why in mine  # the requester's row says it too
    detail = api_client_for(approvers[2]).get(f"/api/v1/promotions/{for_v2.pk}/").json()
    assert detail["state"] == "checks_running" and detail["checks_round"] == 2
    assert detail["recheck_reason"].startswith("production moved from v1 to v3")
    # once checked again the page keeps saying why, and an earlier-round approval is marked
    run_checks(for_v2)
    page = page_client_for(approvers[2]).get(reverse("approvals:request-detail", args=[for_v2.pk])).content.decode()
    assert "Checked again" in page and "because production moved from v1 to v3" in page


def test_evidence_page_warns_when_the_evidence_moved_after_the_checks(model, owner, awaiting, approvers):
    catalog.version_update(version=awaiting.version, actor=owner, changes={"metrics": {"val_auc": 0.93}})
    page = page_client_for(approvers[0]).get(reverse("approvals:request-detail", args=[awaiting.pk])).content.decode()
    assert "The evidence changed after the checks ran:" in page
    assert "the candidate&#x27;s metrics changed: val_auc 0.91 → 0.93" in page


def test_api_answers_409_in_words_and_the_request_stays_back_in_its_checks(model, owner, awaiting, approvers):
    catalog.version_update(version=awaiting.version, actor=owner, changes={"metrics": {"val_auc": 0.95}})
    client = api_client_for(approvers[0])
    digest = client.get(f"/api/v1/promotions/{awaiting.pk}/evidence").json()["evidence_digest"]
    answer = client.post(f"/api/v1/promotions/{awaiting.pk}/approve", {"evidence_digest": digest}, format="json")
    assert answer.status_code == 409
    assert "the candidate's metrics changed: val_auc 0.91 → 0.95" in answer.json()["detail"]
    assert fresh(awaiting).state == "checks_running"  # kept: the refusal did not roll it back
    assert run_checks(awaiting).state == "awaiting_approval"
    evidence = client.get(f"/api/v1/promotions/{awaiting.pk}/evidence").json()
    assert evidence["checks_current"] is True and evidence["recheck_reason"].startswith("the candidate's metrics")
    answer = client.post(
        f"/api/v1/promotions/{awaiting.pk}/approve", {"evidence_digest": evidence["evidence_digest"]}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["decisions"][0]["round"] == 2
