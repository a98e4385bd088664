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
from django.db.models import Prefetch, Q, QuerySet

from apps.approvals.models import Decision, GatePolicy, PromotionCheck, PromotionRequest
from apps.approvals.policies import policy_for
from apps.catalog.models import CARD_SECTIONS, Alias, ModelCard, ModelVersion
from apps.core.models import AuditEntry
from apps.core.permissions import require, restrict, visible_one

__all__ = [
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
        .exclude(pk__in=Decision.objects.filter(approver=user).values("request_id"))
    )


def inbox_for(user) -> dict[str, QuerySet[PromotionRequest]]:
    """The leadership inbox: `awaiting` my decision (soonest expiry first), `mine` (requests I
    filed, newest first), `recent` (the latest decided requests I may see)."""
    return {
        "awaiting": _awaiting(user).order_by("expires_at", "pk"),
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


def evidence_for(promotion: PromotionRequest) -> dict[str, Any]:
    """What approvers decide from. The caller has fetched `promotion` through `promotion_for`.
    `evidence_digest` covers everything but `decisions` and `history` (which grow as people
    decide): a digest changes only when the evidence itself does."""
    candidate = promotion.version
    current = compared_version(promotion)
    checks = PromotionCheck.objects.filter(request=promotion).order_by("pk")
    evidence = {
        "model": promotion.model.name,
        "target_alias": promotion.target_alias,
        "candidate": _version_summary(candidate),
        "current": _version_summary(current),
        "metrics": _metrics_table(candidate, current),
        "checks": [
            {"name": c.name, "status": c.status, "rule": c.rule, "evidence": c.evidence, "params": c.params}
            for c in checks
        ],
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
    digest = evidence_digest_of(evidence)
    decisions = Decision.objects.filter(request=promotion).select_related("approver").order_by("decided_at", "pk")
    return {
        **evidence,
        "decisions": [
            {
                "approver": d.approver.username,
                "decision": d.decision,
                "comment": d.comment,
                "evidence_digest": d.evidence_digest,
                "decided_at": d.decided_at.isoformat(),
            }
            for d in decisions
        ],
        "history": _history(promotion),
        "evidence_digest": digest,
    }


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
