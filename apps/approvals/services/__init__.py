"""Writes for approval gates: promotion requests (`promotions`) and gate policies (`gate_policies`)."""

from apps.approvals.services.gate_policies import policy_create, policy_delete, policy_update
from apps.approvals.services.promotions import (
    promotion_decide,
    promotion_request,
    promotion_rollback,
    promotion_run_checks,
    promotion_withdraw,
    promotions_expire_due,
    promotions_remind_expiring,
)

__all__ = [
    "policy_create",
    "policy_delete",
    "policy_update",
    "promotion_decide",
    "promotion_request",
    "promotion_rollback",
    "promotion_run_checks",
    "promotion_withdraw",
    "promotions_expire_due",
    "promotions_remind_expiring",
]
