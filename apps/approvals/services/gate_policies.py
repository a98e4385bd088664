"""Gate policy writes: platform admins only (403 for everyone else), each change audited."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.approvals.models import GatePolicy
from apps.approvals.policies import clean_policy_fields
from apps.catalog.models import RegisteredModel, alias_validator
from apps.core.audit import audit_event
from apps.core.errors import Conflict
from apps.core.permissions import require


@transaction.atomic
def policy_create(*, actor, alias: str, model: RegisteredModel | None = None, **fields) -> GatePolicy:
    """A model's own policy for `alias` (or, with no model, the default for that alias)."""
    require(actor, "add", GatePolicy)
    try:
        alias_validator(alias)
    except ValidationError as exc:
        raise ValidationError({"alias": exc.messages}) from None
    cleaned = clean_policy_fields(fields, partial=False)
    if GatePolicy.objects.filter(alias=alias, model=model).exists():
        where = f"model {model.name!r}" if model is not None else "the default"
        raise ValidationError({"alias": [f"{where} already has a policy for {alias!r}; change that one."]})
    policy = GatePolicy.objects.create(alias=alias, model=model, updated_by=actor, **cleaned)
    audit_event(actor=actor, event="gate_policy.create", obj=policy, data=policy.snapshot())
    return policy


@transaction.atomic
def policy_update(*, actor, policy: GatePolicy, **changes) -> GatePolicy:
    """Change approver groups, approvals required, checks, window or expiry. Requests already
    filed keep the policy they were filed under."""
    require(actor, "change", policy)
    cleaned = clean_policy_fields(changes, partial=True)
    before = policy.snapshot()
    for name, value in cleaned.items():
        setattr(policy, name, value)
    policy.updated_by = actor
    policy.save()
    audit_event(
        actor=actor, event="gate_policy.update", obj=policy, data={"before": before, "after": policy.snapshot()}
    )
    return policy


@transaction.atomic
def policy_delete(*, actor, policy: GatePolicy) -> None:
    """Remove a model's override (the default then applies); a default row stays (409): edit it."""
    require(actor, "delete", policy)
    if policy.model_id is None:
        raise Conflict("The default policy of an alias cannot be removed; change it instead.")
    audit_event(actor=actor, event="gate_policy.delete", obj=policy, data=policy.snapshot())
    policy.delete()
