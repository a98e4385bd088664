"""Promotion requests through the services: checks, separation of duties, the last approval moving
the alias, rejection, the change window, withdraw, rollback, expiry and reminders, the audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.accounts import roles
from apps.approvals import services
from apps.approvals.models import Decision, GatePolicy, ImmutableDecisionError, PromotionRequest
from apps.catalog.models import Alias, ModelCard
from apps.core.audit import verify_chain
from apps.core.errors import Conflict, Forbidden, NotFound
from apps.core.models import AuditEntry
from apps.core.sharing import share_object
from apps.notifications.models import Notification
from tests.approvals.conftest import add_version, decide, digest_of, file_request, run_checks
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def events(promotion) -> list[str]:
    found = AuditEntry.objects.filter(object_pk=str(promotion.pk), additional_data__event__startswith="promotion.")
    return [e.additional_data["event"] for e in found.order_by("pk")]


def production(model) -> int:
    return Alias.objects.get(model=model, name="production").version.version


def test_request_starts_checks_then_awaits_approval_with_evidence(v2, requester, approvers, sent_tasks):
    promotion = file_request(v2, requester)
    assert promotion.state == "checks_running" and promotion.approvals_required == 2
    assert promotion.policy["approver_groups"] == [roles.APPROVERS]
    assert promotion.expires_at > timezone.now() + timedelta(hours=71)
    assert {c.status for c in promotion.checks.all()} == {"pending"}
    # checks_running requests are dispatched after commit (pytest-django runs no on_commit here)
    promotion = run_checks(promotion)
    assert promotion.state == "awaiting_approval" and len(promotion.evidence_digest) == 64
    checks = {c.name: c for c in promotion.checks.all()}
    metric = checks["metric_threshold"]
    assert metric.status == "passed" and metric.rule == "val_auc >= production.val_auc - 0.005"
    assert metric.evidence["candidate"] == 0.91 and metric.evidence["current"] == 0.90
    assert checks["artifact_digest"].status == "passed"
    assert checks["artifact_digest"].evidence["computed"] == v2.artifact.sha256
    assert checks["onnx_parity"].status == "passed" and checks["onnx_parity"].evidence["max_abs_diff"] == 2e-6
    assert checks["model_card"].status == "passed" and checks["lineage"].status == "passed"
    assert checks["open_alerts"].status == "passed"  # no open critical alert on the model or its endpoints
    assert checks["open_alerts"].evidence == {"open": [], "severity_at_least": "critical"}
    assert checks["residency"].status == "no_data"  # no feature views named: never a silent pass
    told = Notification.objects.filter(kind="promotion.requested", object_id=promotion.pk)
    assert sorted(told.values_list("recipient__username", flat=True)) == ["approver1", "approver2", "approver3"]
    assert events(promotion) == ["promotion.request", "promotion.checks"]


def test_failed_check_blocks_the_request_and_keeps_its_evidence(model, owner, requester, approvers, artifact):
    worse = add_version(model, owner, artifact, metrics={"val_auc": 0.85}, onnx_parity={})
    promotion = run_checks(file_request(worse, requester))
    assert promotion.state == "checks_failed"
    checks = {c.name: c for c in promotion.checks.all()}
    assert checks["metric_threshold"].status == "failed"
    assert checks["metric_threshold"].evidence | {"delta": None} == checks["metric_threshold"].evidence | {
        "delta": None,
        "candidate": 0.85,
        "current": 0.90,
    }
    assert checks["onnx_parity"].status == "failed" and checks["onnx_parity"].evidence["recorded"] is False
    with pytest.raises(Conflict, match="checks failed"):
        decide(promotion, approvers[0])
    assert Notification.objects.filter(recipient=requester, title__startswith="Checks failed").exists()
    assert production(model) == 1


def test_tampered_artifact_fails_the_digest_check(v2, requester):
    from apps.core import vault

    path = vault._local_path(vault.storage(), v2.artifact.storage_key)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    promotion = run_checks(file_request(v2, requester))
    check = promotion.checks.get(name="artifact_digest")
    assert promotion.state == "checks_failed" and check.status == "failed" and "error" in check.evidence


def test_two_approvals_move_the_alias_and_record_everything(model, awaiting, approvers, requester):
    first = decide(awaiting, approvers[0])
    assert first.evidence_digest == awaiting.evidence_digest
    awaiting.refresh_from_db()
    assert awaiting.state == "awaiting_approval" and production(model) == 1
    decide(awaiting, approvers[1], comment="")
    awaiting.refresh_from_db()
    assert awaiting.state == "promoted" and awaiting.previous_version.version == 1
    alias = Alias.objects.get(model=model, name="production")
    assert alias.version.version == 2 and alias.promotion_ref == str(awaiting.pk) and alias.protected
    assert list(awaiting.decisions.values_list("decision", flat=True)) == ["approve", "approve"]
    assert all(len(d.evidence_digest) == 64 for d in awaiting.decisions.all())
    assert events(awaiting)[-3:] == ["promotion.approve", "promotion.approve", "promotion.promote"]
    promote = AuditEntry.objects.get(object_pk=str(awaiting.pk), additional_data__event="promotion.promote")
    assert promote.additional_data["emergency"] is False and promote.actor == approvers[1]
    assert Notification.objects.filter(kind="promotion.promoted", recipient=requester).exists()
    assert verify_chain().ok


def test_separation_of_duties(model, owner, awaiting, approvers, requester, stranger, artifact):
    with pytest.raises(Forbidden, match="requested"):
        decide(awaiting, requester)
    # An approver who is also the version's creator: allowed to see, not to decide.
    creator = make_user("creator-approver", roles.APPROVERS, roles.ML_ENGINEERS)
    share_object(obj=model, actor=owner, role="editor", user=creator)
    own = add_version(model, creator, artifact, metrics={"val_auc": 0.92})
    theirs = run_checks(file_request(own, requester))
    with pytest.raises(Forbidden, match="created this version"):
        decide(theirs, creator)
    reader = make_user("model-reader", roles.ML_ENGINEERS)
    share_object(obj=model, actor=owner, role="viewer", user=reader)
    with pytest.raises(Forbidden, match="approver groups"):
        decide(awaiting, reader)  # sees the request through the model, is no approver
    with pytest.raises(NotFound):
        decide(awaiting, stranger)
    decide(awaiting, approvers[0])
    with pytest.raises(Conflict, match="already decided"):
        decide(awaiting, approvers[0])
    with pytest.raises(ValidationError):
        decide(awaiting, approvers[1], decision="reject", comment="")
    assert Decision.objects.filter(request=awaiting).count() == 1


def test_decisions_are_immutable(awaiting, approvers):
    made = decide(awaiting, approvers[0])
    made.comment = "changed my mind"
    with pytest.raises(ImmutableDecisionError):
        made.save()
    with pytest.raises(ImmutableDecisionError):
        made.delete()


def test_stale_evidence_digest_is_refused(model, awaiting, approvers):
    with pytest.raises(Conflict, match="stale"):
        decide(awaiting, approvers[0], digest="0" * 64)
    shown = digest_of(awaiting)
    ModelCard.objects.filter(model=model).update(
        limitations="Changed after the approver loaded the page: the card is part of the evidence."
    )
    with pytest.raises(Conflict, match="stale") as refused:
        decide(awaiting, approvers[0], digest=shown)
    # the card changed after the checks ran: the request went back to its checks (test_rechecks.py)
    assert "the model card was edited" in str(refused.value.detail)
    run_checks(awaiting)
    decide(awaiting, approvers[0])  # with the fresh digest, on fresh checks


def test_any_rejection_ends_the_request(model, awaiting, approvers, requester):
    decide(awaiting, approvers[0])
    decide(awaiting, approvers[1], decision="reject", comment="The drift report is missing.")
    awaiting.refresh_from_db()
    assert awaiting.state == "rejected" and awaiting.decided_at is not None
    with pytest.raises(Conflict):
        decide(awaiting, approvers[2])
    assert production(model) == 1
    assert Notification.objects.filter(recipient=requester, kind="promotion.decided").count() == 2


def closed_window_now() -> dict:
    """A change window that excludes the current hour (in UTC)."""
    hour = timezone.now().hour
    hours = [hour + 1, 24] if hour < 23 else [0, 23]
    return {"days": list(range(7)), "hours": hours, "timezone": "UTC"}


def test_last_approval_outside_the_window_is_refused_unless_emergency(model, v2, requester, approvers):
    GatePolicy.objects.filter(alias="production", model__isnull=True).update(change_window=closed_window_now())
    normal = run_checks(file_request(v2, requester))
    decide(normal, approvers[0])
    with pytest.raises(Conflict, match="outside the change window"):
        decide(normal, approvers[1])
    assert production(model) == 1 and normal.decisions.count() == 1
    services.promotion_withdraw(actor=requester, promotion=normal)
    emergency = run_checks(file_request(v2, requester, type="emergency"))
    decide(emergency, approvers[0])
    decide(emergency, approvers[1])
    assert production(model) == 2
    flagged = AuditEntry.objects.get(object_pk=str(emergency.pk), additional_data__event="promotion.promote")
    assert flagged.additional_data["emergency"] is True
    filed = AuditEntry.objects.get(object_pk=str(emergency.pk), additional_data__event="promotion.request")
    assert filed.additional_data["emergency"] is True


def test_withdraw_by_the_requester_only_and_not_when_final(awaiting, approvers, owner):
    with pytest.raises(Forbidden):
        services.promotion_withdraw(actor=owner, promotion=awaiting)
    services.promotion_withdraw(actor=awaiting.requested_by, promotion=awaiting)
    awaiting.refresh_from_db()
    assert awaiting.state == "withdrawn"
    with pytest.raises(Conflict, match="no longer be withdrawn"):
        services.promotion_withdraw(actor=awaiting.requested_by, promotion=awaiting)


def test_rollback_moves_the_alias_back(model, awaiting, approvers, requester, admin_user, artifact, owner):
    decide(awaiting, approvers[0])
    decide(awaiting, approvers[1])
    with pytest.raises(ValidationError):
        services.promotion_rollback(actor=approvers[2], promotion=awaiting, comment=" ")
    with pytest.raises(Forbidden):
        services.promotion_rollback(actor=requester, promotion=awaiting, comment="Latency doubled.")
    services.promotion_rollback(actor=approvers[2], promotion=awaiting, comment="Latency doubled.")
    awaiting.refresh_from_db()
    assert awaiting.state == "rolled_back" and awaiting.rolled_back_by == approvers[2]
    alias = Alias.objects.get(model=model, name="production")
    assert alias.version.version == 1 and alias.promotion_ref == f"{awaiting.pk}-rollback"
    with pytest.raises(Conflict):
        services.promotion_rollback(actor=admin_user, promotion=awaiting, comment="again")
    assert Notification.objects.filter(kind="promotion.rolled_back", recipient=requester).exists()
    assert verify_chain().ok


def test_only_the_latest_promotion_rolls_back(model, v2, requester, approvers, owner, artifact, admin_user):
    first = run_checks(file_request(v2, requester))
    decide(first, approvers[0])
    decide(first, approvers[1])
    v3 = add_version(model, owner, artifact, metrics={"val_auc": 0.93})
    second = run_checks(file_request(v3, requester))
    decide(second, approvers[0])
    decide(second, approvers[1])
    with pytest.raises(Conflict, match="latest promoted"):
        services.promotion_rollback(actor=admin_user, promotion=first, comment="wrong one")
    services.promotion_rollback(actor=admin_user, promotion=second, comment="v3 misbehaves")
    assert production(model) == 2


def test_expiry_and_one_reminder(awaiting, approvers, requester):
    system = make_user("sweeper")
    soon = timezone.now() + timedelta(hours=1)
    PromotionRequest.objects.filter(pk=awaiting.pk).update(expires_at=soon)
    assert services.promotions_remind_expiring(actor=system) == 1
    assert services.promotions_remind_expiring(actor=system) == 0
    reminded = Notification.objects.filter(kind="promotion.expiring", object_id=awaiting.pk)
    assert sorted(reminded.values_list("recipient__username", flat=True)) == [
        "approver1",
        "approver2",
        "approver3",
        requester.username,
    ]
    assert services.promotions_expire_due(actor=system) == 0
    assert services.promotions_expire_due(actor=system, now=soon + timedelta(seconds=1)) == 1
    awaiting.refresh_from_db()
    assert awaiting.state == "expired"
    with pytest.raises(Conflict):
        decide(awaiting, approvers[0])


def test_request_validation(model, v1, v2, requester, owner, artifact):
    with pytest.raises(Conflict, match="already points"):
        file_request(v1, requester)
    with pytest.raises(ValidationError) as error:
        file_request(v2, requester, alias="no-policy-here")
    assert "No gate policy" in str(error.value)
    with pytest.raises(ValidationError):
        file_request(v2, requester, type="whenever")
    file_request(v2, requester)
    with pytest.raises(Conflict, match="still open"):
        file_request(v2, requester)
    viewer = make_user("just-viewer", roles.ML_ENGINEERS)
    share_object(obj=model, actor=owner, role="viewer", user=viewer)
    with pytest.raises(Forbidden):
        file_request(v2, viewer)


def test_policies_are_written_by_platform_admins_only_and_audited(model, owner, admin_user, v2, requester):
    with pytest.raises(Forbidden):
        services.policy_create(actor=owner, alias="production", model=model, approver_groups=["approvers"])
    override = services.policy_create(
        actor=admin_user, alias="production", model=model, approver_groups=["approvers"], approvals_required=1
    )
    with pytest.raises(ValidationError):
        services.policy_update(actor=admin_user, policy=override, approvals_required=0)
    with pytest.raises(ValidationError):
        services.policy_update(actor=admin_user, policy=override, approver_groups=["no-such-group"])
    services.policy_update(actor=admin_user, policy=override, expiry_hours=5)
    promotion = file_request(v2, requester)
    assert promotion.approvals_required == 1 and promotion.policy["id"] == override.pk
    default = GatePolicy.objects.get(alias="production", model__isnull=True)
    with pytest.raises(Conflict):
        services.policy_delete(actor=admin_user, policy=default)
    with pytest.raises(Forbidden):
        services.policy_update(actor=owner, policy=override, expiry_hours=1)
    services.policy_delete(actor=admin_user, policy=override)
    audited = AuditEntry.objects.filter(additional_data__event__startswith="gate_policy.")
    assert list(audited.order_by("pk").values_list("additional_data__event", flat=True)) == [
        "gate_policy.create",
        "gate_policy.update",
        "gate_policy.delete",
    ]
    assert all(entry.actor == admin_user for entry in audited)


def test_inbox_puts_my_pending_decisions_first_then_mine_then_recent(model, awaiting, approvers, requester, v1):
    from apps.approvals.selectors import inbox_for

    box = inbox_for(approvers[0])
    assert list(box["awaiting"]) == [awaiting] and list(box["mine"]) == [] and list(box["recent"]) == []
    assert list(inbox_for(requester)["awaiting"]) == []  # separation of duties: never their own
    assert list(inbox_for(requester)["mine"]) == [awaiting]
    decide(awaiting, approvers[0])
    assert list(inbox_for(approvers[0])["awaiting"]) == []  # decided: no longer waiting for them
    decide(awaiting, approvers[1])
    assert list(inbox_for(approvers[2])["recent"]) == [awaiting]


def test_evidence_after_promotion_compares_with_the_replaced_version(model, awaiting, approvers):
    from apps.approvals.selectors import evidence_for

    before = evidence_for(awaiting)
    decide(awaiting, approvers[0])
    decide(awaiting, approvers[1])
    after = evidence_for(PromotionRequest.objects.get(pk=awaiting.pk))
    assert after["current"]["version"] == 1 and after["candidate"]["version"] == 2
    assert after["evidence_digest"] == before["evidence_digest"]  # decisions and history are outside it
    assert [d["approver"] for d in after["decisions"]] == ["approver1", "approver2"]
    assert [h["event"] for h in after["history"]][-1] == "promotion.promote"


def test_lost_checks_message_is_sent_again_and_running_twice_is_harmless(v2, requester, sent_tasks):
    from apps.approvals import tasks

    promotion = file_request(v2, requester)
    PromotionRequest.objects.filter(pk=promotion.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert tasks.expire_due()["checks_resent"] == [promotion.pk]
    assert tasks.run_checks(promotion.pk)["state"] == "awaiting_approval"
    digest = PromotionRequest.objects.get(pk=promotion.pk).evidence_digest
    assert tasks.run_checks(promotion.pk)["state"] == "awaiting_approval"
    assert PromotionRequest.objects.get(pk=promotion.pk).evidence_digest == digest
    assert tasks.expire_due()["checks_resent"] == []


def test_approvers_hear_of_each_decision_on_a_request_they_can_decide(model, awaiting, approvers, requester):
    """Not only the requester and watchers: the request's other approvers learn of each decision
    (their inbox and an open evidence page change); the last approval is one "promoted" message."""

    def kinds(user) -> list[str]:
        found = Notification.objects.filter(recipient=user, object_id=str(awaiting.pk)).order_by("pk")
        return list(found.values_list("kind", flat=True))

    decide(awaiting, approvers[0])
    assert kinds(approvers[0]) == ["promotion.requested"]  # not told of their own decision
    assert kinds(approvers[1]) == kinds(approvers[2]) == ["promotion.requested", "promotion.decided"]
    assert "(1 of 2 approvals)" in Notification.objects.filter(recipient=approvers[1]).latest("pk").title
    decide(awaiting, approvers[1])
    for user in approvers:
        assert kinds(user)[-1] == "promotion.promoted"
    assert kinds(requester)[-2:] == ["promotion.decided", "promotion.promoted"]  # no second "decided"
    told = Notification.objects.filter(recipient=requester, kind="promotion.promoted").get()
    assert "approver2 gave the last approval (2 of 2)" in told.body and "from v1 to v2" in told.body


def test_approvers_hear_of_a_rejection(model, awaiting, approvers, requester):
    decide(awaiting, approvers[2], decision="reject", comment="The drift report is missing.")
    for user in approvers[:2]:
        latest = Notification.objects.filter(recipient=user).latest("pk")
        assert latest.kind == "promotion.decided" and "rejected" in latest.title
        assert latest.body == "The drift report is missing."
