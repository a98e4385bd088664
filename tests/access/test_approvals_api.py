"""Approvals API: gate policies and promotion requests (shared/API.md, "Promotions, gate policies").

The matrix's personas hold no approver group, so every decision row is 403 for those who see the
request (the owner is its requester: separation of duties) and 404 for strangers; deciding with
success is in tests/approvals/. Platform admins may see and roll back, never decide unless they
are in the policy's groups.
"""

from __future__ import annotations

import io

from tests.access import objects
from tests.access.matrix import AccessMatrix, api_collection, api_reads

P = "/api/v1/promotions/{pk}"
G = "/api/v1/gate-policies/{policy}/"
ADMIN_ONLY = dict(owner=403, viewer=403, editor=403, team=403, stranger=404, admin=200, auditor=403, anon=401)
DECIDE = dict(owner=403, viewer=403, editor=403, team=403, stranger=404, admin=403, auditor=403, anon=401)


def approvals(owner, team) -> dict:
    """credit-risk v1 behind production, v2 requested by the owner with its checks run, and a
    model override of the production policy."""
    from apps.accounts import roles
    from apps.approvals import services, tasks
    from apps.approvals.models import PromotionRequest
    from apps.catalog import services as catalog
    from apps.catalog.models import CARD_SECTIONS
    from tests.approvals.conftest import LINEAGE, PARITY, SetupTicket
    from tests.conftest import make_user

    make_user("matrix-approver", roles.APPROVERS)
    found = objects.catalog(owner, team)
    model = found["obj"]
    catalog.card_update(
        model=model, actor=owner, **{f: f"{label} for the access matrix." for f, label in CARD_SECTIONS}
    )
    v1 = model.versions.get(version=1)
    catalog.alias_move(
        model=model, alias="production", version=v1, actor=owner, promotion=SetupTicket("setup", v1, "production")
    )
    onnx = found["onnx"]
    v2 = catalog.version_register(
        model=model,
        actor=owner,
        artifact=io.BytesIO(onnx),
        artifact_size=len(onnx),
        metrics={"auc": 0.92},
        lineage=LINEAGE,
        onnx_parity=PARITY,
    )
    promotion = services.promotion_request(
        actor=owner, version=v2, target_alias="production", justification="Better.", change={"type": "normal"}
    )
    tasks.run_checks(promotion.pk)
    promotion = PromotionRequest.objects.get(pk=promotion.pk)
    admin = type(owner).objects.get(username="platformadmin")
    policy = services.policy_create(
        actor=admin, alias="champion", model=model, approver_groups=["approvers"], approvals_required=1
    )
    return {"obj": model, "pk": promotion.pk, "policy": policy.pk, "digest": promotion.evidence_digest}


def decision(world) -> dict:
    return {"evidence_digest": world.params["digest"], "comment": "Checked the evidence."}


class TestApprovalsApiAccess(AccessMatrix):
    make = staticmethod(approvals)
    rows = {
        ("GET", "/api/v1/gate-policies/"): api_collection(auditor=200),
        ("POST", "/api/v1/gate-policies/"): dict(
            ADMIN_ONLY,
            admin=201,
            stranger=403,  # a default policy names no model: nothing to hide, the role decides
            no_scope_token=403,
            body={"alias": "canary", "approver_groups": ["approvers"], "approvals_required": 1},
        ),
        ("GET", G): api_reads(auditor=200),
        ("PATCH", G): dict(ADMIN_ONLY, no_scope_token=403, body={"expiry_hours": 12}),
        ("DELETE", G): dict(ADMIN_ONLY, admin=204, no_scope_token=403),
        ("GET", "/api/v1/promotions/"): api_collection(auditor=200),
        ("POST", "/api/v1/promotions/"): dict(
            owner=201,
            editor=201,
            viewer=403,
            team=403,
            stranger=404,
            admin=201,
            auditor=404,
            anon=401,
            no_scope_token=403,
            body={"model": "credit-risk", "version": 2, "target_alias": "champion", "justification": "Try it."},
        ),
        ("GET", f"{P}/"): api_reads(auditor=200),
        ("GET", f"{P}/evidence"): api_reads(auditor=200),
        ("POST", f"{P}/approve"): dict(DECIDE, no_scope_token=403, body=decision),
        ("POST", f"{P}/reject"): dict(DECIDE, no_scope_token=403, body=decision),
        ("POST", f"{P}/withdraw"): dict(DECIDE, owner=200, no_scope_token=403),
        # visible to the admin and theirs to roll back, but the request is not promoted: 409
        ("POST", f"{P}/rollback"): dict(DECIDE, admin=409, no_scope_token=403, body={"comment": "Back, please."}),
    }
