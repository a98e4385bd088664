"""The whole promotion flow through the API, its 403/404/409 answers, gate policies, and every
way of moving a protected alias refused (API, page, admin) with lifting refused for owners."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from apps.approvals.models import GatePolicy
from apps.catalog.models import Alias
from apps.core.audit import verify_chain
from apps.core.errors import Conflict
from apps.core.models import AuditEntry
from apps.notifications.models import Notification
from tests.approvals.conftest import run_checks
from tests.conftest import api_client_for, page_client_for

pytestmark = pytest.mark.django_db

BODY = {
    "model": "credit-risk",
    "version": 2,
    "target_alias": "production",
    "justification": "Better AUC on the October validation set.",
    "change": {
        "type": "normal",
        "risk": "low",
        "impact": "Scores shift by under 1 %.",
        "rollback_plan": "POST rollback; v1 stays loaded.",
        "window_start": "2030-01-06T08:00:00Z",
        "window_end": "2030-01-06T10:00:00Z",
    },
}


def evidence(client, pk) -> dict:
    r = client.get(f"/api/v1/promotions/{pk}/evidence")
    assert r.status_code == 200, r.content
    return r.json()


def test_whole_flow_through_the_api(model, v2, api_requester, api_approvers, approvers, requester, api_stranger):
    r = api_requester.post("/api/v1/promotions/", BODY, format="json")
    assert r.status_code == 201, r.content
    created = r.json()
    pk = created["id"]
    assert created["state"] == "checks_running" and created["change"]["rollback_plan"].startswith("POST rollback")
    assert created["approvals_required"] == 2 and {c["status"] for c in created["checks"]} == {"pending"}
    run_checks(type("P", (), {"pk": pk})())
    detail = api_requester.get(f"/api/v1/promotions/{pk}/").json()
    assert detail["state"] == "awaiting_approval" and detail["expires_at"]
    # strangers learn nothing; approvers (no share of the model) see it and its evidence
    assert api_stranger.get(f"/api/v1/promotions/{pk}/").status_code == 404
    assert api_stranger.get(f"/api/v1/promotions/{pk}/evidence").status_code == 404
    assert (
        api_stranger.post(f"/api/v1/promotions/{pk}/approve", {"evidence_digest": "x"}, format="json").status_code
        == 404
    )
    pack = evidence(api_approvers[0], pk)
    assert pack["evidence_digest"] == detail["evidence_digest"]
    auc = next(row for row in pack["metrics"] if row["name"] == "val_auc")
    assert auc == {"name": "val_auc", "candidate": 0.91, "current": 0.90, "delta": pytest.approx(0.01)}
    assert pack["current"]["version"] == 1 and pack["card"]["completeness"] == 1.0
    assert pack["lineage"]["run_id"] == "run-7" and pack["change"]["risk"] == "low"
    assert [h["event"] for h in pack["history"] if h["event"].startswith("promotion.")][:2] == [
        "promotion.request",
        "promotion.checks",
    ]
    inbox = api_approvers[0].get("/api/v1/promotions/?awaiting=me").json()
    assert [row["id"] for row in inbox["results"]] == [pk]
    assert api_requester.get("/api/v1/promotions/?awaiting=me").json()["count"] == 0
    assert api_requester.get("/api/v1/promotions/?requested_by=me").json()["count"] == 1
    # the requester may not decide; a stale digest is refused; the otp is accepted (issue #17 enforces it)
    r = api_requester.post(
        f"/api/v1/promotions/{pk}/approve", {"evidence_digest": pack["evidence_digest"]}, format="json"
    )
    assert r.status_code == 403 and "separation of duties" in r.json()["detail"]
    r = api_approvers[0].post(f"/api/v1/promotions/{pk}/approve", {"evidence_digest": "0" * 64}, format="json")
    assert r.status_code == 409 and "stale" in r.json()["detail"]
    body = {"evidence_digest": pack["evidence_digest"], "comment": "Fine.", "otp": "123456"}
    r = api_approvers[0].post(f"/api/v1/promotions/{pk}/approve", body, format="json")
    assert r.status_code == 200 and r.json()["state"] == "awaiting_approval", r.content
    assert api_approvers[0].post(f"/api/v1/promotions/{pk}/approve", body, format="json").status_code == 409
    r = api_approvers[1].post(
        f"/api/v1/promotions/{pk}/approve", {"evidence_digest": pack["evidence_digest"]}, format="json"
    )
    promoted = r.json()
    assert r.status_code == 200 and promoted["state"] == "promoted" and promoted["previous_version"] == 1
    assert [d["approver"] for d in promoted["decisions"]] == ["approver1", "approver2"]
    assert {d["evidence_digest"] for d in promoted["decisions"]} == {pack["evidence_digest"]}
    alias = api_requester.get("/api/v1/models/credit-risk/aliases/production").json()
    assert alias["version"] == 2 and alias["promotion_ref"] == str(pk)
    # withdraw in a final state: 409; rollback needs a comment, then moves the alias back
    assert api_requester.post(f"/api/v1/promotions/{pk}/withdraw").status_code == 409
    assert api_approvers[2].post(f"/api/v1/promotions/{pk}/rollback", {}, format="json").status_code == 400
    assert api_requester.post(f"/api/v1/promotions/{pk}/rollback", {"comment": "no"}, format="json").status_code == 403
    r = api_approvers[2].post(f"/api/v1/promotions/{pk}/rollback", {"comment": "p95 doubled"}, format="json")
    assert r.status_code == 200 and r.json()["state"] == "rolled_back" and r.json()["rolled_back_by"] == "approver3"
    assert api_requester.get("/api/v1/models/credit-risk/aliases/production").json()["version"] == 1
    kinds = set(Notification.objects.filter(recipient=requester).values_list("kind", flat=True))
    assert {"promotion.decided", "promotion.promoted", "promotion.rolled_back"} <= kinds
    assert verify_chain().ok


def test_reject_needs_a_comment_and_unknown_fields_are_refused(awaiting, api_approvers):
    pk, digest = awaiting.pk, awaiting.evidence_digest
    r = api_approvers[0].post(f"/api/v1/promotions/{pk}/reject", {"evidence_digest": digest}, format="json")
    assert r.status_code == 400 and "comment" in r.json()
    r = api_approvers[0].post(f"/api/v1/promotions/{pk}/reject", {"evidence_digest": digest, "vote": 1}, format="json")
    assert r.status_code == 400 and r.json()["vote"] == ["Unknown field."]
    r = api_approvers[0].post(
        f"/api/v1/promotions/{pk}/reject", {"evidence_digest": digest, "comment": "No drift report."}, format="json"
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"


def test_create_validation(v2, api_requester, api_stranger):
    assert api_stranger.post("/api/v1/promotions/", BODY, format="json").status_code == 404
    bad = {**BODY, "change": {**BODY["change"], "colour": "red"}}
    r = api_requester.post("/api/v1/promotions/", bad, format="json")
    assert r.status_code == 400 and "colour" in str(r.json())
    r = api_requester.post("/api/v1/promotions/", {**BODY, "change": {"type": "whenever"}}, format="json")
    assert r.status_code == 400
    r = api_requester.post("/api/v1/promotions/", {**BODY, "version": 1}, format="json")
    assert r.status_code == 409  # already behind the alias
    assert api_requester.get("/api/v1/promotions/?state=nonsense").status_code == 400
    assert api_requester.get("/api/v1/promotions/99999/").status_code == 404


def test_gate_policies_api(model, api_owner, api_admin, api_stranger):
    listed = api_owner.get("/api/v1/gate-policies/").json()
    assert {row["alias"] for row in listed["results"]} == {"production", "champion"}
    default = next(row for row in listed["results"] if row["alias"] == "production")
    assert default["model"] is None and default["approver_groups"] == ["approvers"]
    body = {"model": "credit-risk", "alias": "production", "approver_groups": ["approvers"], "approvals_required": 1}
    assert api_owner.post("/api/v1/gate-policies/", body, format="json").status_code == 403
    assert api_stranger.post("/api/v1/gate-policies/", body, format="json").status_code == 404
    r = api_admin.post("/api/v1/gate-policies/", body, format="json")
    assert r.status_code == 201 and r.json()["model"] == "credit-risk", r.content
    pk = r.json()["id"]
    assert api_stranger.get(f"/api/v1/gate-policies/{pk}/").status_code == 404
    assert api_owner.get(f"/api/v1/gate-policies/{pk}/").status_code == 200
    assert api_owner.patch(f"/api/v1/gate-policies/{pk}/", {"expiry_hours": 5}, format="json").status_code == 403
    window = {"days": [0, 1, 2, 3], "hours": [9, 17], "timezone": "Asia/Dubai"}
    r = api_admin.patch(f"/api/v1/gate-policies/{pk}/", {"change_window": window}, format="json")
    assert r.status_code == 200 and r.json()["change_window"] == window
    bad = {"change_window": {"days": [9], "hours": [17, 9], "timezone": "Mars/Olympus"}}
    assert api_admin.patch(f"/api/v1/gate-policies/{pk}/", bad, format="json").status_code == 400
    bad_check = {"checks": [{"name": "vibes", "params": {}}]}
    assert api_admin.patch(f"/api/v1/gate-policies/{pk}/", bad_check, format="json").status_code == 400
    default_pk = GatePolicy.objects.get(alias="production", model__isnull=True).pk
    assert api_admin.delete(f"/api/v1/gate-policies/{default_pk}/").status_code == 409
    assert api_admin.delete(f"/api/v1/gate-policies/{pk}/").status_code == 204
    assert AuditEntry.objects.filter(
        additional_data__event="gate_policy.update", actor__username="platformadmin"
    ).exists()


# --- a protected alias moves only through an approved promotion, on every path -------------------------


URL = "/api/v1/models/credit-risk/aliases/production"


def test_protected_alias_refuses_api_moves_and_names_promotions(model, v2, api_owner):
    for refused in (api_owner.put(URL, {"version": 2}, format="json"), api_owner.delete(URL)):
        assert refused.status_code == 409 and "POST /api/v1/promotions/" in refused.json()["detail"]
    r = api_owner.put("/api/v1/models/credit-risk/aliases/champion", {"version": 2}, format="json")
    assert r.status_code == 409 and "POST /api/v1/promotions/" in r.json()["detail"]
    assert Alias.objects.get(model=model, name="production").version.version == 1


def test_only_platform_admins_lift_protection_and_refusals_are_audited(model, owner, api_owner, api_admin, requester):
    for client in (api_owner, api_client_for(requester)):
        r = client.patch(URL, {"protected": False}, format="json")
        assert r.status_code == 403 and "platform admin" in r.json()["detail"]
    refused = AuditEntry.objects.filter(additional_data__event="alias.unprotect_refused")
    assert sorted(refused.values_list("actor__username", flat=True)) == ["collaborator", "owner"]
    assert Alias.objects.get(model=model, name="production").protected
    assert api_admin.patch(URL, {"protected": False}, format="json").status_code == 200
    assert AuditEntry.objects.filter(additional_data__event="alias.unprotect", actor__username="platformadmin").exists()


def test_protected_alias_refuses_page_and_admin_moves(model, v2, owner, admin_user):
    r = page_client_for(owner).post("/models/credit-risk/aliases/", {"alias": "production", "version": 2})
    assert r.status_code == 409 and b"/api/v1/promotions/" in r.content
    r = page_client_for(owner).post(
        "/models/credit-risk/aliases/", {"alias": "production", "version": 1, "action": "delete"}
    )
    assert r.status_code == 409
    admin = site._registry[Alias]
    request = RequestFactory().post("/")
    request.user = admin_user
    alias = Alias.objects.get(model=model, name="production")
    assert "version" in admin.get_readonly_fields(request, alias) and not admin.has_delete_permission(request, alias)
    alias.version = v2
    with pytest.raises(Conflict, match="promotions"):
        admin.save_model(request, alias, form=None, change=True)
    assert Alias.objects.get(model=model, name="production").version.version == 1


def test_promotion_list_query_count_is_the_same_for_5_and_10_requests(model, owner, requester, api_requester, artifact):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.approvals.conftest import add_version, file_request

    def grow(count: int) -> None:
        for _ in range(count):
            file_request(add_version(model, owner, artifact, metrics={"val_auc": 0.95}), requester)

    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            assert api_requester.get("/api/v1/promotions/?page_size=100").status_code == 200
        return len(seen)

    grow(5)
    queries()
    five = queries()
    grow(5)
    assert queries() == five
    assert api_requester.get("/api/v1/promotions/").json()["count"] == 10


def test_gate_policy_admin_is_for_platform_admins_and_writes_through_the_services(model, owner, admin_user):
    from apps.approvals.admin import GatePolicyForm

    admin = site._registry[GatePolicy]
    request = RequestFactory().post("/")
    request.user = owner
    assert not admin.has_module_permission(request) and not admin.has_change_permission(request)
    request.user = admin_user
    default = GatePolicy.objects.get(alias="production", model__isnull=True)
    assert admin.has_change_permission(request, default) and not admin.has_delete_permission(request, default)
    data = {
        "model": model.pk,
        "alias": "production",
        "approver_groups": '["approvers"]',
        "approvals_required": 0,
        "checks": "[]",
        "change_window": "null",
        "expiry_hours": 24,
    }
    assert not GatePolicyForm(data=data).is_valid()
    form = GatePolicyForm(data={**data, "approvals_required": 1})
    assert form.is_valid(), form.errors
    obj = form.save(commit=False)
    admin.save_model(request, obj, form, change=False)
    assert GatePolicy.objects.get(model=model, alias="production").updated_by == admin_user
    assert AuditEntry.objects.filter(additional_data__event="gate_policy.create", actor=admin_user).exists()


@pytest.mark.parametrize(
    "checks",
    [
        '[{"name": "metric_threshold", "params": {"metric": "val_auc", "max_drop": 1e400}}]',  # inf once parsed
        [{"name": "metric_threshold", "params": {"metric": "val_auc", "maxdrop": 0.1}}],
        [{"name": "residency", "params": {"allowed_regions": "default"}}],
        [{"name": "model_card", "params": {"anything": 1}}],
        [{"name": "metric_threshold"}],
        {"name": "lineage"},
    ],
)
def test_bad_policy_checks_are_a_400_never_a_500(api_admin, checks):
    listed = checks if isinstance(checks, str) else json.dumps(checks)
    body = f'{{"alias": "canary", "approver_groups": ["approvers"], "approvals_required": 1, "checks": {listed}}}'
    r = api_admin.post("/api/v1/gate-policies/", body, content_type="application/json")
    assert r.status_code == 400 and "checks" in r.json(), r.content
