"""Approval pages: inbox, list, new request, evidence page and its decide/withdraw/rollback posts.

The owner is the requester; viewer, editor and team see the request through the model; none of
the personas is an approver (tests/approvals/test_pages.py covers approvers), so deciding is 403
for all who can see the request (the requester by separation of duties), 404 for strangers."""

from __future__ import annotations

from tests.access.matrix import AccessMatrix, page_changes, page_collection, page_reads
from tests.approvals.test_pages import make_world, register

R = "/approvals/requests/{pk}"


def build(owner, team):
    made = make_world(owner)
    v3 = register(owner, made["model"], {"val_auc": 0.92}, None)
    p = made["promotion"]
    return {
        "obj": made["model"],
        "pk": p.pk,
        "name": "credit-risk",
        "v2": made["v2"].version,
        "v3": v3.version,
        "digest": p.evidence_digest,
    }


def new_request(world):
    return {
        "model": "credit-risk",
        "version": world.params["v3"],
        "target_alias": "production",
        "justification": "Better.",
        "change_type": "normal",
        "risk": "low",
    }


def decision(world):
    return {"decision": "approve", "comment": "ok", "evidence_digest": world.params["digest"]}


# Not an approver of the policy (or the requester): 403 for everyone who sees the request.
NOT_APPROVER = dict(owner=403, viewer=403, editor=403, team=403, stranger=404, admin=403, anon="login")


class TestApprovalPageAccess(AccessMatrix):
    make = staticmethod(build)
    rows = {
        ("GET", "/approvals/"): page_collection(auditor=200),
        ("GET", "/approvals/requests/"): page_collection(auditor=200),
        # the request form needs the requesting role and a version the user can see; filing it,
        # the right to change the model (viewers 403)
        ("GET", "/approvals/requests/new/?model={name}&version={v2}"): page_reads(auditor=403),
        ("POST", "/approvals/requests/new/"): page_changes(body=new_request, auditor=403),
        ("GET", f"{R}/"): page_reads(auditor=200),
        ("POST", f"{R}/decide/"): NOT_APPROVER | {"body": decision},
        # withdrawing is the requester's alone
        ("POST", f"{R}/withdraw/"): dict(
            owner=302, viewer=403, editor=403, team=403, stranger=404, admin=403, anon="login"
        ),
        # rolling back: the policy's approvers or platform admins; the admin gets past the right
        # and meets the state rule (the request is not promoted: 409)
        ("POST", f"{R}/rollback/"): NOT_APPROVER | {"admin": 409, "body": {"comment": "bad"}},
    }
