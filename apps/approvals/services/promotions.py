"""Promotion requests: file, run the checks, decide, withdraw, roll back, expire, remind.

Rules (shared/API.md): the requester and the version's creator never decide (403), nobody decides
twice (409), a decision needs the current evidence digest (409 when stale), the last approval of a
normal or standard change must fall in the change window (409 naming it; emergency changes skip
the window, never the approvals, and are flagged in the audit trail). The last approval moves the
alias in the same transaction, under a row lock on the request, so two approvals racing promote
exactly once. The `otp` second factor of a decision is issue #17's (not enforced here yet).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.approvals import checks as automated
from apps.approvals.models import Decision, PromotionCheck, PromotionRequest, RollbackTicket
from apps.approvals.policies import outside_window, policy_for
from apps.approvals.selectors import basis_changes, compared_version, evidence_basis, evidence_digest_of, evidence_for
from apps.approvals.services.notices import (
    tell_checks_failed,
    tell_closed,
    tell_decided,
    tell_expiring,
    tell_promoted,
    tell_requested,
    tell_rolled_back,
)
from apps.approvals.services.rechecks import recheck_others, send_back
from apps.catalog import services as catalog
from apps.catalog.models import Alias, ModelVersion, alias_validator
from apps.core import residency
from apps.core.audit import audit_event
from apps.core.dispatch import enqueue
from apps.core.errors import Conflict, Forbidden
from apps.core.permissions import require

State = PromotionRequest.State
CHANGE_FIELDS = ("type", "risk", "impact", "rollback_plan", "window_start", "window_end")
TEXT_LIMIT = 20000


def _clean_change(change: dict | None) -> dict:
    """The change record: type, risk, impact, rollback plan, planned window (datetimes or None)."""
    change = change or {}
    unknown = sorted(set(change) - set(CHANGE_FIELDS))
    if unknown:
        raise ValidationError({"change": [f"Unknown field(s): {', '.join(unknown)}."]})
    change_type = change.get("type") or PromotionRequest.ChangeType.NORMAL
    risk = change.get("risk") or PromotionRequest.Risk.MEDIUM
    errors = {}
    if change_type not in PromotionRequest.ChangeType.values:
        errors["type"] = [f"Use one of {', '.join(PromotionRequest.ChangeType.values)}."]
    if risk not in PromotionRequest.Risk.values:
        errors["risk"] = [f"Use one of {', '.join(PromotionRequest.Risk.values)}."]
    start, end = change.get("window_start"), change.get("window_end")
    for key, value in (("window_start", start), ("window_end", end)):
        if value is not None and not isinstance(value, datetime):
            errors[key] = ["Give an ISO 8601 date and time."]
    if not errors and start and end and start >= end:
        errors["window_end"] = ["The planned window must end after it starts."]
    for key in ("impact", "rollback_plan"):
        if not isinstance(change.get(key) or "", str) or len(change.get(key) or "") > TEXT_LIMIT:
            errors[key] = [f"Text of at most {TEXT_LIMIT:,} characters."]
    if errors:
        raise ValidationError({"change": [f"{k}: {' '.join(v)}" for k, v in errors.items()]})
    return {
        "change_type": change_type,
        "risk": risk,
        "impact": (change.get("impact") or "").strip(),
        "rollback_plan": (change.get("rollback_plan") or "").strip(),
        "window_start": start,
        "window_end": end,
    }


def promotion_request(
    *, actor, version: ModelVersion, target_alias: str, justification: str, change: dict
) -> PromotionRequest:
    """File a request to point `target_alias` at `version` (state checks_running) and start its
    checks after commit. Needs the right to request (ml-engineers) and to change the model.
    A request whose promotion residency would refuse now (an endpoint of another region follows the
    alias) is refused at once (409, audited before the request's transaction), not at its approval."""
    require(actor, "change", version.model)
    require(actor, "add", PromotionRequest)
    residency.check_alias_move(actor=actor, model=version.model, alias=target_alias, version=version)
    return _file_request(
        actor=actor, version=version, target_alias=target_alias, justification=justification, change=change
    )


@transaction.atomic
def _file_request(*, actor, version: ModelVersion, target_alias: str, justification: str, change: dict):
    model = version.model
    try:
        alias_validator(target_alias)
    except ValidationError as exc:
        raise ValidationError({"target_alias": exc.messages}) from None
    justification = (justification or "").strip()
    if not justification or len(justification) > TEXT_LIMIT:
        raise ValidationError({"justification": ["Say why this version should be promoted (required)."]})
    fields = _clean_change(change)
    if model.archived_at is not None:
        raise Conflict(f"Model {model.name!r} is archived; its aliases no longer move.")
    policy = policy_for(model, target_alias)
    if policy is None:
        raise ValidationError(
            {"target_alias": [f"No gate policy covers alias {target_alias!r}; a platform admin adds one first."]}
        )
    current = Alias.objects.filter(model=model, name=target_alias).first()
    if current is not None and current.version_id == version.pk:
        raise Conflict(f"{target_alias} already points to version {version.version}.")
    open_one = PromotionRequest.objects.filter(
        model=model, version=version, target_alias=target_alias, state__in=PromotionRequest.OPEN_STATES
    ).first()
    if open_one is not None:
        raise Conflict(f"Promotion request #{open_one.pk} for this version and alias is still open.")
    promotion = PromotionRequest.objects.create(
        model=model,
        version=version,
        target_alias=target_alias,
        requested_by=actor,
        justification=justification,
        approvals_required=policy.approvals_required,
        policy=policy.snapshot(),
        expires_at=timezone.now() + timedelta(hours=policy.expiry_hours),
        **fields,
    )
    promotion.approver_groups.set(Group.objects.filter(name__in=policy.approver_groups))
    PromotionCheck.objects.bulk_create(
        PromotionCheck(request=promotion, name=c["name"], params=c.get("params") or {}) for c in policy.checks
    )
    audit_event(
        actor=actor,
        event="promotion.request",
        obj=promotion,
        data={
            "model": model.name,
            "version": version.version,
            "alias": target_alias,
            "change_type": promotion.change_type,
            "emergency": promotion.is_emergency,
            "policy": policy.pk,
        },
    )
    enqueue("approvals.run_checks", args=[promotion.pk], queue="default")
    return promotion


def promotion_run_checks(*, promotion: PromotionRequest, actor) -> PromotionRequest:
    """Run the request's checks (slow: the artifact is decrypted) outside any transaction, then
    store the results with the evidence they ran on (`checks_basis`) and move to
    awaiting_approval, or checks_failed when one failed. Results of an older round (the request
    was sent back meanwhile) are dropped; when the evidence changed while they ran, the checks
    are sent again instead of stored."""
    round_ = promotion.checks_round
    basis = evidence_basis(promotion)
    basis_digest = evidence_digest_of(basis)
    subject = automated.Subject(
        candidate=promotion.version, current=compared_version(promotion), alias=promotion.target_alias
    )
    pending = list(PromotionCheck.objects.filter(request=promotion).order_by("pk"))
    results = [(check, automated.run_check(check.name, subject, check.params)) for check in pending]
    with transaction.atomic():
        locked = PromotionRequest.objects.select_for_update().select_related("model", "version").get(pk=promotion.pk)
        if locked.state != State.CHECKS_RUNNING or locked.checks_round != round_:
            return locked  # withdrawn, expired or sent back for a newer round meanwhile: keep what is there
        if evidence_digest_of(evidence_basis(locked)) != basis_digest:
            enqueue("approvals.run_checks", args=[locked.pk], queue="default")  # changed while checking
            return locked
        now = timezone.now()
        for check, result in results:
            check.status, check.rule, check.evidence, check.ran_at, check.basis_digest = (
                result.status,
                result.rule[:500],
                result.evidence,
                now,
                basis_digest,
            )
            check.save(update_fields=["status", "rule", "evidence", "ran_at", "basis_digest"])
        failed = [check.name for check, result in results if result.status == automated.FAILED]
        locked.state = State.CHECKS_FAILED if failed else State.AWAITING_APPROVAL
        locked.checks_basis, locked.checks_basis_digest = basis, basis_digest
        locked.evidence_digest = evidence_for(locked)["evidence_digest"]
        locked.save(update_fields=["state", "evidence_digest", "checks_basis", "checks_basis_digest"])
        audit_event(
            actor=actor,
            event="promotion.checks",
            obj=locked,
            data={
                "state": locked.state,
                "results": {check.name: result.status for check, result in results},
                "evidence_digest": locked.evidence_digest,
                "basis_digest": basis_digest,
                "round": locked.checks_round,
            },
        )
        if failed:
            tell_checks_failed(locked, failed)
        else:
            tell_requested(locked)
    return locked


def _check_separation_of_duties(actor, promotion: PromotionRequest) -> None:
    require(actor, "view", promotion)
    if actor.pk == promotion.requested_by_id:
        raise Forbidden("You requested this promotion; someone else must decide it (separation of duties).")
    if actor.pk == promotion.version.created_by_id:
        raise Forbidden("You created this version; someone else must decide it (separation of duties).")
    if not promotion.approver_groups.filter(user=actor).exists():
        groups = ", ".join(promotion.policy.get("approver_groups") or []) or "none"
        raise Forbidden(f"Only members of the policy's approver groups ({groups}) decide this request.")


def promotion_decide(
    *, actor, promotion: PromotionRequest, decision: str, comment: str = "", evidence_digest: str | None = None
) -> Decision:
    """Approve or reject. The last approval moves the alias in this transaction; any rejection
    ends the request. Raises Forbidden (separation of duties, not an approver), Conflict (not
    awaiting approval, second decision, stale evidence digest, outside the change window, or the
    evidence no longer matching what the checks ran on: then the request goes back to its checks
    first, committed, and the 409 says what changed)."""
    if decision not in Decision.Kind.values:
        raise ValidationError({"decision": ["Use approve or reject."]})
    comment = (comment or "").strip()
    if decision == Decision.Kind.REJECT and not comment:
        raise ValidationError({"comment": ["Say why you reject the request (required)."]})
    if len(comment) > TEXT_LIMIT:
        raise ValidationError({"comment": [f"At most {TEXT_LIMIT:,} characters."]})
    if not evidence_digest:
        raise ValidationError(
            {"evidence_digest": ["Give the evidence_digest of the evidence you decided on (GET .../evidence)."]}
        )
    _check_separation_of_duties(actor, promotion)
    if decision == Decision.Kind.APPROVE and _would_promote(promotion):
        # Residency first, outside the transaction (its audit entry stays): nothing is recorded and
        # the alias does not move; alias_move checks again under the lock should anything change.
        residency.check_alias_move(
            actor=actor, model=promotion.model, alias=promotion.target_alias, version=promotion.version
        )
    with transaction.atomic():
        _lock_alias(promotion)
        # The row lock serialises decisions on one request: two last approvals cannot both move the alias.
        locked = PromotionRequest.objects.select_for_update().select_related("model", "version").get(pk=promotion.pk)
        if locked.state != State.AWAITING_APPROVAL:
            running_again = locked.state == State.CHECKS_RUNNING and locked.recheck_reason
            again = f" (checks are running again because {locked.recheck_reason})" if running_again else ""
            raise Conflict(f"The request is {locked.get_state_display().lower()}{again}; it takes no decisions.")
        if Decision.objects.filter(request=locked, approver=actor, round=locked.checks_round).exists():
            raise Conflict("You have already decided this request; decisions cannot be changed.")
        evidence = evidence_for(locked)
        changes = []
        if not evidence["checks_current"]:  # what the approver would see now is not what the checks ran on
            changes = basis_changes(locked.checks_basis, evidence_basis(locked)) or ["the evidence changed"]
        if changes:
            stale = evidence_digest != evidence["evidence_digest"]
            send_back(locked, actor=actor, reason="; ".join(changes), cause="decision_on_changed_evidence")
        else:
            if evidence_digest != evidence["evidence_digest"]:
                raise Conflict(
                    "The evidence changed since you loaded it (stale evidence_digest); reload and decide again."
                )
            made = _record_decision(locked, actor=actor, decision=decision, comment=comment, shown=evidence)
    if changes:  # raised after the commit above: the request is back in its checks, for everybody
        raise Conflict(
            f"The checks ran on evidence that has changed since{' (and your evidence_digest is stale)' * stale}: "
            f"{'; '.join(changes)}. The request went back "
            "to its checks, which are running again; decide once they have finished."
        )
    promotion.refresh_from_db()
    return made


def _would_promote(promotion: PromotionRequest) -> bool:
    """Whether one more approval would be the last one (read without the lock: a hint)."""
    approvals = promotion.decisions.filter(decision=Decision.Kind.APPROVE, round=promotion.checks_round).count()
    return approvals + 1 >= promotion.approvals_required


def _record_decision(locked: PromotionRequest, *, actor, decision: str, comment: str, shown: dict) -> Decision:
    """Inside promotion_decide's transaction and row lock, on evidence the checks ran on."""
    digest = shown["evidence_digest"]
    approvals = locked.decisions.filter(decision=Decision.Kind.APPROVE, round=locked.checks_round).count()
    last = decision == Decision.Kind.APPROVE and approvals + 1 >= locked.approvals_required
    if (
        last
        and not locked.is_emergency
        and (reason := outside_window(locked.policy.get("change_window"), timezone.now()))
    ):
        raise Conflict(reason)
    made = Decision.objects.create(
        request=locked,
        approver=actor,
        decision=decision,
        comment=comment,
        evidence_digest=digest,
        round=locked.checks_round,
    )
    audit_event(
        actor=actor,
        event=f"promotion.{decision}",
        obj=locked,
        data={
            "decision": made.pk,
            "evidence_digest": digest,
            "basis_digest": locked.checks_basis_digest,
            "round": locked.checks_round,
            "comment": comment[:1000],
            "approvals": approvals + (decision == "approve"),
        },
    )
    if decision == Decision.Kind.REJECT:
        _finish(locked, State.REJECTED)
    elif last:
        _promote(locked, actor)
    if last:
        tell_promoted(locked, approver=actor, comment=comment)
    else:
        tell_decided(locked, approver=actor, decision=decision, comment=comment)
    return made


def _lock_alias(promotion: PromotionRequest) -> None:
    """Lock the alias row first (before any request row), as alias_move does next: decisions,
    promotions and rollbacks on one alias then take their locks in one order and never deadlock
    when a promotion sends the alias's other open requests back to their checks."""
    list(Alias.objects.select_for_update().filter(model_id=promotion.model_id, name=promotion.target_alias))


def _finish(promotion: PromotionRequest, state: str) -> None:
    promotion.state, promotion.decided_at = state, timezone.now()
    promotion.save(update_fields=["state", "decided_at"])


def _promote(promotion: PromotionRequest, actor) -> None:
    """Move the alias with the approved request (inside the caller's transaction and row lock)."""
    current = Alias.objects.filter(model=promotion.model, name=promotion.target_alias).select_related("version").first()
    promotion.previous_version = current.version if current is not None else None
    catalog.alias_move(
        model=promotion.model, alias=promotion.target_alias, version=promotion.version, actor=actor, promotion=promotion
    )
    now = timezone.now()
    promotion.state, promotion.decided_at, promotion.promoted_at = State.PROMOTED, now, now
    promotion.save(update_fields=["state", "decided_at", "promoted_at", "previous_version"])
    audit_event(
        actor=actor,
        event="promotion.promote",
        obj=promotion,
        data={
            "model": promotion.model.name,
            "alias": promotion.target_alias,
            "from_version": promotion.previous_version.version if promotion.previous_version else None,
            "to_version": promotion.version.version,
            "emergency": promotion.is_emergency,
            "change_type": promotion.change_type,
        },
    )
    recheck_others(
        promotion, actor=actor, moved_from=promotion.previous_version, moved_to=promotion.version, why="promotion"
    )


@transaction.atomic
def promotion_withdraw(*, actor, promotion: PromotionRequest) -> PromotionRequest:
    """The requester withdraws an open request (409 once it is final)."""
    require(actor, "withdraw", promotion)
    locked = PromotionRequest.objects.select_for_update().get(pk=promotion.pk)
    if locked.state not in PromotionRequest.OPEN_STATES:
        raise Conflict(f"The request is {locked.get_state_display().lower()}; it can no longer be withdrawn.")
    _finish(locked, State.WITHDRAWN)
    audit_event(actor=actor, event="promotion.withdraw", obj=locked, data={"state": locked.state})
    tell_closed(locked, why="withdrawn")
    return locked


def promotion_rollback(*, actor, promotion: PromotionRequest, comment: str) -> PromotionRequest:
    """Move the alias back to the version this request replaced. Only the alias's latest promoted
    request rolls back (409 otherwise), by one of its approvers or a platform admin. Residency is
    checked first, outside the transaction (409, audited): the request stays promoted."""
    comment = (comment or "").strip()
    if not comment:
        raise ValidationError({"comment": ["Say why you roll back (required)."]})
    require(actor, "rollback", promotion)
    if promotion.state == State.PROMOTED and promotion.previous_version is not None:
        residency.check_alias_move(
            actor=actor, model=promotion.model, alias=promotion.target_alias, version=promotion.previous_version
        )
    return _roll_back(actor=actor, promotion=promotion, comment=comment)


@transaction.atomic
def _roll_back(*, actor, promotion: PromotionRequest, comment: str) -> PromotionRequest:
    _lock_alias(promotion)
    locked = PromotionRequest.objects.select_for_update().select_related("model", "version").get(pk=promotion.pk)
    latest = (
        PromotionRequest.objects.filter(model=locked.model, target_alias=locked.target_alias, state=State.PROMOTED)
        .order_by("-promoted_at", "-pk")
        .first()
    )
    if locked.state != State.PROMOTED or latest is None or latest.pk != locked.pk:
        raise Conflict("Only the alias's latest promoted request can be rolled back.")
    if locked.previous_version is None:
        raise Conflict(
            f"{locked.target_alias} pointed to no version before this promotion; there is nothing to roll back to."
        )
    ticket = RollbackTicket(
        pk=f"{locked.pk}-rollback", model_version=locked.previous_version, target_alias=locked.target_alias
    )
    catalog.alias_move(
        model=locked.model, alias=locked.target_alias, version=locked.previous_version, actor=actor, promotion=ticket
    )
    locked.state, locked.rolled_back_at, locked.rolled_back_by = State.ROLLED_BACK, timezone.now(), actor
    locked.rollback_comment = comment[:TEXT_LIMIT]
    locked.save(update_fields=["state", "rolled_back_at", "rolled_back_by", "rollback_comment"])
    audit_event(
        actor=actor,
        event="promotion.rollback",
        obj=locked,
        data={
            "alias": locked.target_alias,
            "from_version": locked.version.version,
            "to_version": locked.previous_version.version,
            "comment": comment[:1000],
        },
    )
    tell_rolled_back(locked)
    recheck_others(locked, actor=actor, moved_from=locked.version, moved_to=locked.previous_version, why="rollback of")
    return locked


# --- schedules -------------------------------------------------------------------------------------


def promotions_expire_due(*, actor, now: datetime | None = None) -> int:
    """Expire open requests past `expires_at` (beat: approvals.expire_due). Returns how many."""
    now = now or timezone.now()
    expired = 0
    due = PromotionRequest.objects.filter(state__in=PromotionRequest.OPEN_STATES, expires_at__lte=now)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            locked = PromotionRequest.objects.select_for_update().select_related("model", "version").get(pk=pk)
            if locked.state not in PromotionRequest.OPEN_STATES:
                continue
            _finish(locked, State.EXPIRED)
            audit_event(
                actor=actor, event="promotion.expire", obj=locked, data={"expires_at": locked.expires_at.isoformat()}
            )
            tell_closed(locked, why="expired")
            expired += 1
    return expired


def promotions_remind_expiring(*, actor, now: datetime | None = None) -> int:
    """Remind pending approvers and the requester once, APPROVAL_REMIND_BEFORE_HOURS before expiry."""
    now = now or timezone.now()
    soon = now + timedelta(hours=settings.APPROVAL_REMIND_BEFORE_HOURS)
    due = PromotionRequest.objects.filter(
        state=State.AWAITING_APPROVAL, reminded_at__isnull=True, expires_at__gt=now, expires_at__lte=soon
    )
    reminded = 0
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            locked = PromotionRequest.objects.select_for_update().select_related("model", "version").get(pk=pk)
            if locked.reminded_at is not None or locked.state != State.AWAITING_APPROVAL:
                continue
            locked.reminded_at = now
            locked.save(update_fields=["reminded_at"])
            audit_event(
                actor=actor, event="promotion.remind", obj=locked, data={"expires_at": locked.expires_at.isoformat()}
            )
            tell_expiring(locked)
            reminded += 1
    return reminded
