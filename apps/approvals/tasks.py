"""Celery tasks of approval gates: each loads by id (or sweeps), acts as the system user and calls
one service. `promotion_request` sends `approvals.run_checks` by name after commit; beat sends
`approvals.expire_due` and `approvals.remind_expiring` (portal/settings/, "# --- Approvals")."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from apps.approvals import services
from apps.approvals.models import PromotionRequest
from apps.core.audit import acting_as, system_user
from apps.core.dispatch import enqueue

# A request still checking after this long lost its message (broker or worker gone): send it again.
CHECKS_STALE_AFTER = timedelta(minutes=10)


@shared_task(name="approvals.run_checks", acks_late=True)
def run_checks(promotion_id: int) -> dict:
    if not isinstance(promotion_id, int):
        raise ValueError("run_checks takes a PromotionRequest id")
    promotion = (
        PromotionRequest.objects.select_related("model", "version", "version__artifact").filter(pk=promotion_id).first()
    )
    if promotion is None:
        return {"promotion": promotion_id, "state": None}
    actor = system_user()
    with acting_as(actor):
        promotion = services.promotion_run_checks(promotion=promotion, actor=actor)
    return {"promotion": promotion.pk, "state": promotion.state}


@shared_task(name="approvals.expire_due")
def expire_due() -> dict:
    """Expire overdue requests; re-send the checks of requests whose checks message was lost
    (run_checks is safe to repeat: it stores results only while the request is still checking)."""
    actor = system_user()
    with acting_as(actor):
        expired = services.promotions_expire_due(actor=actor)
    cutoff = timezone.now() - CHECKS_STALE_AFTER
    stale = (
        PromotionRequest.objects.filter(state=PromotionRequest.State.CHECKS_RUNNING)
        .filter(Q(rechecked_at__isnull=True, created_at__lte=cutoff) | Q(rechecked_at__lte=cutoff))
        .values_list("pk", flat=True)
    )
    resent = list(stale)
    for pk in resent:
        enqueue("approvals.run_checks", args=[pk], queue="default")
    return {"expired": expired, "checks_resent": resent}


@shared_task(name="approvals.remind_expiring")
def remind_expiring() -> dict:
    actor = system_user()
    with acting_as(actor):
        reminded = services.promotions_remind_expiring(actor=actor)
    return {"reminded": reminded}
