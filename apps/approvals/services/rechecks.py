"""Checks that no longer match the evidence: send a request back to `checks_running`.

The checks of a request record the evidence they ran on (`checks_basis`, its digest on the request
and on each check). When that evidence changes (the version behind the alias moved, a metric of
the candidate or the model card was edited), the old results say nothing about the new evidence:
`promotion_decide` refuses with 409 and calls `send_back`, and a promotion or rollback that moves
an alias calls `recheck_others` for every other open request on it. Either way the request starts
a new round: its checks run again (Celery, after commit), approvals from earlier rounds no longer
count, and its requester and approvers are told why, in words.
"""

from __future__ import annotations

from django.utils import timezone

from apps.approvals.models import PromotionCheck, PromotionRequest
from apps.approvals.services.notices import tell_rechecking
from apps.core.audit import audit_event
from apps.core.dispatch import enqueue

State = PromotionRequest.State


def send_back(locked: PromotionRequest, *, actor, reason: str, cause: str) -> PromotionRequest:
    """Back to checks_running with its checks pending, a new round, and `reason` (plain words,
    "production moved from v1 to v3") shown on the evidence page and in the inbox. `locked` is
    row-locked by the caller, inside its transaction; the checks are sent after commit."""
    old_checks = list(PromotionCheck.objects.filter(request=locked).order_by("pk"))
    before = {"state": locked.state, "round": locked.checks_round, "basis_digest": locked.checks_basis_digest}
    locked.state = State.CHECKS_RUNNING
    locked.checks_round += 1
    locked.recheck_reason = reason[:1000]
    locked.rechecked_at = timezone.now()
    locked.evidence_digest = ""
    locked.save(update_fields=["state", "checks_round", "recheck_reason", "rechecked_at", "evidence_digest"])
    PromotionCheck.objects.filter(request=locked).update(
        status=PromotionCheck.Status.PENDING, rule="", evidence={}, ran_at=None, basis_digest=""
    )
    audit_event(
        actor=actor,
        event="promotion.recheck",
        obj=locked,
        data={
            **{f"previous_{k}": v for k, v in before.items()},
            "round": locked.checks_round,
            "reason": locked.recheck_reason,
            "cause": cause,
            # the results that no longer count stay in the audit trail with the evidence they read
            "previous_results": {
                c.name: {"status": c.status, "rule": c.rule, "evidence": c.evidence} for c in old_checks
            },
        },
    )
    enqueue("approvals.run_checks", args=[locked.pk], queue="default")
    tell_rechecking(locked)
    return locked


def recheck_others(promotion: PromotionRequest, *, actor, moved_from, moved_to, why: str) -> list[int]:
    """`promotion` (promoted or rolled back) moved its alias from `moved_from` to `moved_to`
    (versions or None): every other open request for the same model and alias was checked against
    the old version, so each goes back to its checks now. Returns their ids."""
    others = (
        PromotionRequest.objects.select_for_update()
        .select_related("model", "version", "requested_by")
        .filter(
            model_id=promotion.model_id, target_alias=promotion.target_alias, state__in=PromotionRequest.OPEN_STATES
        )
        .exclude(pk=promotion.pk)
        .order_by("pk")
    )
    before = f"v{moved_from.version}" if moved_from is not None else "no version"
    reason = f"{promotion.target_alias} moved from {before} to v{moved_to.version} ({why} #{promotion.pk})"
    sent = []
    for other in others:
        send_back(other, actor=actor, reason=reason, cause=f"alias_moved:{promotion.pk}")
        sent.append(other.pk)
    return sent
