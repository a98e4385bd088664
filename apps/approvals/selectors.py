"""Permission-aware reads for approval gates: requests, the inbox, the evidence pack, policies.

Every `_for` and `_visible` starts from `restrict(...)` (apps/core/permissions.py decides who sees a
request: viewers of its model and the approvers its policy names). `evidence_for` is what
approvers decide from; its `evidence_digest` is recorded with each decision.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import F, Prefetch, Q, QuerySet

from apps.approvals.models import Decision, GatePolicy, PromotionCheck, PromotionRequest
from apps.approvals.policies import policy_for
from apps.catalog.models import CARD_SECTIONS, Alias, ModelCard, ModelVersion
from apps.core.models import AuditEntry
from apps.core.permissions import require, restrict, visible_one

__all__ = [
    "basis_changes",
    "evidence_basis",
    "evidence_digest_of",
    "evidence_for",
    "gate_policy_for",
    "inbox_for",
    "policies_visible",
    "policy_for",
    "promotion_for",
    "promotions_visible",
    "rollback_blocker",
]
RECENT_DECISIONS = 20


def _promotions() -> QuerySet[PromotionRequest]:
    return PromotionRequest.objects.select_related(
        "model", "version", "version__created_by", "requested_by", "previous_version", "rolled_back_by"
    )


def promotion_for(user, pk, action: str = "view") -> PromotionRequest:
    """One request: `NotFound` when missing or invisible, `Forbidden` when visible but `action`
    (decide, withdraw, rollback) is not the user's."""
    found = visible_one(
        user,
        _promotions().prefetch_related(
            Prefetch("checks", queryset=PromotionCheck.objects.order_by("pk")),
            Prefetch("decisions", queryset=Decision.objects.select_related("approver").order_by("decided_at", "pk")),
        ),
        pk=pk,
    )
    if action != "view":
        require(user, action, found)
    return found


def promotions_visible(user, filters: dict) -> QuerySet[PromotionRequest]:
    """Requests `user` may see, newest first. `filters` (validated): state, model (a name),
    awaiting ("me": waiting for my decision), requested_by ("me")."""
    found = restrict(user, "view", _promotions())
    if state := filters.get("state"):
        found = found.filter(state=state)
    if model := filters.get("model"):
        found = found.filter(model__name=model)
    if filters.get("awaiting") == "me":
        found = found.filter(pk__in=_awaiting(user).values("pk"))
    if filters.get("requested_by") == "me":
        found = found.filter(requested_by=user)
    return found.order_by("-created_at", "-pk")


def _awaiting(user) -> QuerySet[PromotionRequest]:
    """Waiting for `user`'s decision: in their groups, awaiting approval, not decided by them, and
    not theirs to refuse by separation of duties (requested by them, or their version)."""
    return (
        restrict(user, "decide", _promotions())
        .filter(state=PromotionRequest.State.AWAITING_APPROVAL)
        .exclude(Q(requested_by=user) | Q(version__created_by=user))
        .exclude(pk__in=Decision.objects.filter(approver=user, round=F("request__checks_round")).values("request_id"))
    )


def _rechecking(user) -> QuerySet[PromotionRequest]:
    """Sent back to its checks because the evidence changed (an alias move, an edited metric or
    card), among the requests `user` may decide: they come back to "awaiting" once checked."""
    return (
        restrict(user, "decide", _promotions())
        .filter(state=PromotionRequest.State.CHECKS_RUNNING)
        .exclude(recheck_reason="")
        .exclude(Q(requested_by=user) | Q(version__created_by=user))
    )


def inbox_for(user) -> dict[str, QuerySet[PromotionRequest]]:
    """The leadership inbox: `awaiting` my decision (soonest expiry first), `rechecking` (mine to
    decide, checks running again, with why), `mine` (requests I filed, newest first), `recent`
    (the latest decided requests I may see)."""
    return {
        "awaiting": _awaiting(user).order_by("expires_at", "pk"),
        "rechecking": _rechecking(user).order_by("expires_at", "pk"),
        "mine": _promotions().filter(requested_by=user).order_by("-created_at", "-pk"),
        "recent": restrict(user, "view", _promotions())
        .filter(decided_at__isnull=False)
        .order_by("-decided_at", "-pk")[:RECENT_DECISIONS],
    }


def rollback_blocker(promotion: PromotionRequest) -> str:
    """Why this request cannot be rolled back ("" when it can, as far as its state goes; who may
    is `can(user, "rollback", ...)`). The service refuses the same cases with 409."""
    if promotion.state != PromotionRequest.State.PROMOTED:
        return "Only a promoted request can be rolled back."
    latest = (
        PromotionRequest.objects.filter(
            model_id=promotion.model_id, target_alias=promotion.target_alias, state=PromotionRequest.State.PROMOTED
        )
        .order_by("-promoted_at", "-pk")
        .values_list("pk", flat=True)
        .first()
    )
    if latest != promotion.pk:
        return f"A later promotion (#{latest}) moved {promotion.target_alias}; roll that one back instead."
    if promotion.previous_version_id is None:
        return (
            f"{promotion.target_alias} pointed to no version before this promotion; there is nothing to roll back to."
        )
    return ""


# --- the evidence pack ---------------------------------------------------------------------------


def compared_version(promotion: PromotionRequest) -> ModelVersion | None:
    """What the candidate is compared with: the version behind the alias now, or, once the request
    has moved the alias, the version it replaced."""
    if promotion.state in (PromotionRequest.State.PROMOTED, PromotionRequest.State.ROLLED_BACK):
        return promotion.previous_version
    alias = Alias.objects.filter(model_id=promotion.model_id, name=promotion.target_alias).select_related("version")
    found = alias.first()
    return found.version if found is not None else None


def _metrics_table(candidate: ModelVersion, current: ModelVersion | None) -> list[dict[str, Any]]:
    theirs = current.metrics if current is not None else {}
    rows = []
    for name in sorted(set(candidate.metrics) | set(theirs)):
        mine, other = candidate.metrics.get(name), theirs.get(name)
        delta = round(mine - other, 12) if mine is not None and other is not None else None
        rows.append({"name": name, "candidate": mine, "current": other, "delta": delta})
    return rows


def _card(model_id: int) -> dict[str, Any]:
    card = ModelCard.objects.filter(model_id=model_id).first()
    sections = {field: (getattr(card, field) if card else "") for field, _ in CARD_SECTIONS}
    missing = card.missing_sections() if card else [label for _, label in CARD_SECTIONS]
    return {
        "completeness": round(1 - len(missing) / len(CARD_SECTIONS), 3),
        "missing_sections": missing,
        "sections": {field: text[:600] for field, text in sections.items()},
    }


def _version_summary(version: ModelVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "version": version.version,
        "metrics": version.metrics,
        "created_by": version.created_by.username,
        "created_at": version.created_at.isoformat(),
        "sha256": version.artifact.sha256,
    }


def _history(promotion: PromotionRequest) -> list[dict[str, Any]]:
    """The request's own audit events (request, checks, each decision, promote, rollback, ...);
    the row-level change entries auditlog also keeps stay in the audit trail."""
    entries = AuditEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(PromotionRequest),
        object_pk=str(promotion.pk),
        additional_data__event__isnull=False,
    ).select_related("actor")
    return [
        {
            "event": entry.additional_data["event"],
            "actor": entry.actor.username if entry.actor else None,
            "at": entry.timestamp.isoformat(),
            "data": {k: v for k, v in (entry.additional_data or {}).items() if k != "event"},
        }
        for entry in entries.order_by("timestamp", "pk")
    ]


def evidence_basis(promotion: PromotionRequest) -> dict[str, Any]:
    """The evidence without the check results: what the checks run on and what approvers see
    beside them. Its digest is stored when the checks run (`checks_basis_digest`); a decision on a
    basis that no longer matches it sends the request back to its checks."""
    candidate = promotion.version
    current = compared_version(promotion)
    return {
        "model": promotion.model.name,
        "target_alias": promotion.target_alias,
        "candidate": _version_summary(candidate),
        "current": _version_summary(current),
        "metrics": _metrics_table(candidate, current),
        "card": _card(promotion.model_id),
        "change": {
            "type": promotion.change_type,
            "risk": promotion.risk,
            "impact": promotion.impact,
            "rollback_plan": promotion.rollback_plan,
            "window_start": promotion.window_start.isoformat() if promotion.window_start else None,
            "window_end": promotion.window_end.isoformat() if promotion.window_end else None,
            "justification": promotion.justification,
            "requested_by": promotion.requested_by.username,
        },
        "lineage": {
            "run_id": candidate.run_id,
            "training_set": candidate.training_set,
            "training_data_digest": candidate.training_data_digest,
            "feature_views": candidate.feature_views,
            "code_version": candidate.code_version,
            "package_versions": candidate.package_versions,
            "seed": candidate.seed,
            "onnx_parity": candidate.onnx_parity,
        },
        "policy": promotion.policy,
    }


def evidence_for(promotion: PromotionRequest) -> dict[str, Any]:
    """What approvers decide from. The caller has fetched `promotion` through `promotion_for`.
    `evidence_digest` covers everything but `decisions` and `history` (which grow as people
    decide): a digest changes only when the evidence itself does. `basis_digest` is the digest of
    the same evidence without the checks (`evidence_basis`); `checks_current` says whether the
    checks ran on it."""
    basis = evidence_basis(promotion)
    checks = PromotionCheck.objects.filter(request=promotion).order_by("pk")
    evidence = {
        **basis,
        "checks": [
            {"name": c.name, "status": c.status, "rule": c.rule, "evidence": c.evidence, "params": c.params}
            for c in checks
        ],
    }
    digest = evidence_digest_of(evidence)
    basis_digest = evidence_digest_of(basis)
    decisions = Decision.objects.filter(request=promotion).select_related("approver").order_by("decided_at", "pk")
    return {
        **evidence,
        "decisions": [
            {
                "approver": d.approver.username,
                "decision": d.decision,
                "comment": d.comment,
                "evidence_digest": d.evidence_digest,
                "round": d.round,
                "decided_at": d.decided_at.isoformat(),
            }
            for d in decisions
        ],
        "history": _history(promotion),
        "evidence_digest": digest,
        "basis_digest": basis_digest,
        "checks_current": bool(promotion.checks_basis_digest) and promotion.checks_basis_digest == basis_digest,
        "recheck_reason": promotion.recheck_reason,
    }


def _num(value) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)


def _metric_changes(before: dict, after: dict) -> list[str]:
    changed = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if old is None:
            changed.append(f"{name} {_num(new)} was added")
        elif new is None:
            changed.append(f"{name} was removed")
        else:
            changed.append(f"{name} {_num(old)} → {_num(new)}")
    return changed


def basis_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What changed between two `evidence_basis` dicts, in plain words ("production moved from v1
    to v3", "the candidate's val_auc changed: 0.91 → 0.85"). Empty when nothing did."""
    if not before:
        return ["the checks ran before the portal recorded the evidence they ran on"]
    alias = after.get("target_alias") or before.get("target_alias") or "the alias"
    said: list[str] = []
    old, new = before.get("current"), after.get("current")
    old_v, new_v = (old or {}).get("version"), (new or {}).get("version")
    if old_v != new_v:
        if new_v is None:
            said.append(f"{alias} no longer points to a version (it pointed to v{old_v})")
        elif old_v is None:
            said.append(f"{alias} now points to v{new_v} (it pointed to no version)")
        else:
            said.append(f"{alias} moved from v{old_v} to v{new_v}")
    elif old != new:
        metrics = _metric_changes((old or {}).get("metrics") or {}, (new or {}).get("metrics") or {})
        what = f": {', '.join(metrics)}" if metrics else ""
        said.append(f"the metrics of {alias} (v{new_v}) changed{what}")
    cand_old, cand_new = before.get("candidate") or {}, after.get("candidate") or {}
    metrics = _metric_changes(cand_old.get("metrics") or {}, cand_new.get("metrics") or {})
    if metrics:
        said.append(f"the candidate's metrics changed: {', '.join(metrics)}")
    if cand_old.get("sha256") != cand_new.get("sha256"):
        said.append("the candidate's artifact changed")
    card_old, card_new = before.get("card") or {}, after.get("card") or {}
    if card_old != card_new:
        now_missing = card_new.get("missing_sections") or []
        if card_old.get("missing_sections") != now_missing:
            said.append(
                f"the model card changed (missing now: {', '.join(now_missing)})"
                if now_missing
                else "the model card changed (now complete)"
            )
        else:
            said.append("the model card was edited")
    if before.get("lineage") != after.get("lineage"):
        said.append("the candidate's lineage changed")
    if before.get("change") != after.get("change"):
        said.append("the change record changed")
    if before.get("policy") != after.get("policy"):
        said.append("the gate policy changed")
    if not said and evidence_digest_of(before) != evidence_digest_of(after):
        said.append("the evidence changed")
    return said


def evidence_digest_of(evidence: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the evidence (sorted keys, no whitespace)."""
    canonical = json.dumps(evidence, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- gate policies ---------------------------------------------------------------------------------


def policies_visible(user, filters: dict) -> QuerySet[GatePolicy]:
    """Policies `user` may see (the defaults, and those of models they may view); filters: alias, model."""
    found = restrict(user, "view", GatePolicy.objects.select_related("model", "updated_by"))
    if alias := filters.get("alias"):
        found = found.filter(alias=alias)
    if model := filters.get("model"):
        found = found.filter(model__name=model)
    return found.order_by("alias", "model__name", "pk")


def gate_policy_for(user, pk, action: str = "view") -> GatePolicy:
    found = visible_one(user, GatePolicy.objects.select_related("model", "updated_by"), pk=pk)
    if action != "view":
        require(user, action, found)
    return found
