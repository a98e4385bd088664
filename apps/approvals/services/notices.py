"""Who hears about a promotion request, and what they are told (through `notifications.notify`).

Called inside the services' transactions: `notify` writes rows there and sends the live push and
the e-mail only after commit.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse

from apps.approvals.models import PromotionRequest
from apps.notifications.services import notify


def promotion_url(promotion: PromotionRequest) -> str:
    """The evidence page of the request (apps/approvals/urls.py)."""
    return reverse("approvals:request-detail", args=[promotion.pk])


def approvers_of(promotion: PromotionRequest, *, pending_only: bool = False) -> list:
    """Active members of the request's approver groups, without the requester and the version's
    creator (they may not decide); with `pending_only`, without those who have decided."""
    users = (
        get_user_model()
        .objects.filter(groups__in=promotion.approver_groups.all(), is_active=True)
        .exclude(pk__in=[promotion.requested_by_id, promotion.version.created_by_id])
        .distinct()
        .order_by("pk")
    )
    if pending_only:
        users = users.exclude(pk__in=promotion.decisions.filter(round=promotion.checks_round).values("approver_id"))
    return list(users)


def watchers_of(promotion: PromotionRequest) -> list:
    """The requester, the model's owner and the version's creator."""
    return [promotion.requested_by, promotion.model.owner, promotion.version.created_by]


def _label(promotion: PromotionRequest) -> str:
    return f"{promotion.model.name} v{promotion.version.version} to {promotion.target_alias}"


def tell_requested(promotion: PromotionRequest) -> None:
    again = f"Checked again because {promotion.recheck_reason}. " if promotion.recheck_reason else ""
    notify(
        recipients=approvers_of(promotion),
        kind="promotion.requested",
        title=f"Your decision: promote {_label(promotion)}",
        body=f"{again}{promotion.requested_by} asks for it ({promotion.get_change_type_display()} change, "
        f"{promotion.risk} risk): {promotion.justification[:500]}",
        url=promotion_url(promotion),
        obj=promotion,
    )


def tell_rechecking(promotion: PromotionRequest) -> None:
    """Sent back to its checks (the evidence changed): the requester and every approver, who must
    not decide on the old results; earlier approvals of the request no longer count."""
    notify(
        recipients=[promotion.requested_by, *approvers_of(promotion)],
        kind="promotion.rechecking",
        title=f"Checks running again: {_label(promotion)}",
        body=f"Checks are running again because {promotion.recheck_reason}. Earlier approvals no longer "
        "count; decide again once the checks have finished.",
        url=promotion_url(promotion),
        obj=promotion,
    )


def tell_checks_failed(promotion: PromotionRequest, failed: list[str]) -> None:
    """The requester; after a re-check also the approvers, who were told the checks run again."""
    notify(
        recipients=[promotion.requested_by, *(approvers_of(promotion) if promotion.recheck_reason else [])],
        kind="promotion.decided",
        title=f"Checks failed: {_label(promotion)}",
        body=f"Failed: {', '.join(failed)}. The request cannot be approved; see the evidence."
        + (f" (Checked again because {promotion.recheck_reason}.)" if promotion.recheck_reason else ""),
        url=promotion_url(promotion),
        obj=promotion,
    )


def tell_decided(promotion: PromotionRequest, *, approver, decision: str, comment: str) -> None:
    """A decision that did not promote (an approval short of the last, or a rejection): the
    requester and watchers, and the request's other approvers (their inbox and an open evidence
    page change: one approval fewer to go, or the request is over)."""
    verb = "approved" if decision == "approve" else "rejected"
    count = promotion.decisions.filter(decision="approve", round=promotion.checks_round).count()
    progress = f" ({count} of {promotion.approvals_required} approvals)" if decision == "approve" else ""
    others = [user for user in approvers_of(promotion) if user.pk != approver.pk]
    notify(
        recipients=[*watchers_of(promotion), *others],
        kind="promotion.decided",
        title=f"{approver} {verb} {_label(promotion)}{progress}",
        body=comment[:1000],
        url=promotion_url(promotion),
        obj=promotion,
    )


def tell_promoted(promotion: PromotionRequest, *, approver, comment: str = "") -> None:
    """The last approval moved the alias: one message (not a "decided" one besides) to the
    requester, watchers and every approver of the request."""
    before = f"v{promotion.previous_version.version}" if promotion.previous_version else "nothing"
    said = f" ({comment[:1000]})" if comment else ""
    notify(
        recipients=[*watchers_of(promotion), *approvers_of(promotion)],
        kind="promotion.promoted",
        title=f"Promoted: {_label(promotion)}",
        body=f"{approver} gave the last approval ({promotion.approvals_required} of "
        f"{promotion.approvals_required}){said}; {promotion.target_alias} moved from {before} "
        f"to v{promotion.version.version}.",
        url=promotion_url(promotion),
        obj=promotion,
    )


def tell_expiring(promotion: PromotionRequest) -> None:
    notify(
        recipients=[*approvers_of(promotion, pending_only=True), promotion.requested_by],
        kind="promotion.expiring",
        title=f"Expires soon: {_label(promotion)}",
        body=f"The request expires at {promotion.expires_at:%Y-%m-%d %H:%M} UTC without enough approvals.",
        url=promotion_url(promotion),
        obj=promotion,
    )


def tell_closed(promotion: PromotionRequest, *, why: str) -> None:
    """Expired or withdrawn: the requester and whoever was asked to decide."""
    notify(
        recipients=[promotion.requested_by, *approvers_of(promotion, pending_only=True)],
        kind="promotion.decided",
        title=f"{why.capitalize()}: {_label(promotion)}",
        url=promotion_url(promotion),
        obj=promotion,
    )


def tell_rolled_back(promotion: PromotionRequest) -> None:
    notify(
        recipients=[*watchers_of(promotion), *approvers_of(promotion)],
        kind="promotion.rolled_back",
        title=f"Rolled back: {_label(promotion)}",
        body=f"{promotion.rolled_back_by} moved {promotion.target_alias} back to "
        f"v{promotion.previous_version.version}: {promotion.rollback_comment[:1000]}",
        url=promotion_url(promotion),
        obj=promotion,
    )
