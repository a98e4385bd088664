"""Approval gates: gate policies, promotion requests, their automated checks and the decisions.

A `GatePolicy` says what moving an alias needs (approver groups, N distinct approvals, checks,
change window, expiry); a `PromotionRequest` asks to move one alias to one version and carries a
snapshot of the policy it was filed under, so later policy edits never change a request in flight.
`Decision` rows are immutable: there is no update or delete path, here or in the admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from apps.catalog.models import ModelVersion, RegisteredModel, alias_validator

CHECK_NAMES = (
    "metric_threshold",
    "onnx_parity",
    "model_card",
    "artifact_digest",
    "lineage",
    "residency",
    "open_alerts",
)


class GatePolicy(models.Model):
    """What promoting to `alias` needs. `model` null: the default for every model (seeded from
    `settings.APPROVAL_DEFAULT_POLICIES`); a row with a model overrides it for that model."""

    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, null=True, blank=True, related_name="gate_policies"
    )
    alias = models.CharField(max_length=40, validators=[alias_validator])
    approver_groups = models.JSONField(default=list, help_text="names of the groups whose members may decide")
    approvals_required = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    checks = models.JSONField(default=list, blank=True, help_text='[{"name": ..., "params": {...}}]')
    change_window = models.JSONField(
        null=True, blank=True, help_text='{"days": [0..6], "hours": [start, end], "timezone": "Asia/Dubai"}'
    )
    expiry_hours = models.PositiveIntegerField(default=72, validators=[MinValueValidator(1)])
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "gate policies"
        ordering = ["alias", "model__name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["model", "alias"], name="approvals_policy_unique"),
            # NULLs are distinct in a unique index: the default row per alias needs its own rule.
            models.UniqueConstraint(
                fields=["alias"], condition=Q(model__isnull=True), name="approvals_default_policy_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name if self.model_id else 'default'}@{self.alias}"

    def snapshot(self) -> dict[str, Any]:
        """The policy as a request keeps it (PromotionRequest.policy)."""
        return {
            "id": self.pk,
            "model": self.model.name if self.model_id else None,
            "alias": self.alias,
            "approver_groups": list(self.approver_groups),
            "approvals_required": self.approvals_required,
            "checks": list(self.checks),
            "change_window": self.change_window,
            "expiry_hours": self.expiry_hours,
        }


class PromotionRequest(models.Model):
    """A request to point `target_alias` of `model` at `version`, with its ITIL change record.

    Implements `apps.catalog.services.ApprovedPromotion` (`is_approved`, `model_version`,
    `target_alias`), which is what `alias_move` needs to move a protected alias."""

    class State(models.TextChoices):
        CHECKS_RUNNING = "checks_running", "Checks running"
        CHECKS_FAILED = "checks_failed", "Checks failed"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        PROMOTED = "promoted", "Approved and promoted"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"
        EXPIRED = "expired", "Expired"
        ROLLED_BACK = "rolled_back", "Rolled back"

    class ChangeType(models.TextChoices):
        STANDARD = "standard", "Standard"
        NORMAL = "normal", "Normal"
        EMERGENCY = "emergency", "Emergency"

    class Risk(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    OPEN_STATES = (State.CHECKS_RUNNING, State.CHECKS_FAILED, State.AWAITING_APPROVAL)
    FINAL_STATES = (State.PROMOTED, State.REJECTED, State.WITHDRAWN, State.EXPIRED, State.ROLLED_BACK)

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="promotions")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    target_alias = models.CharField(max_length=40, validators=[alias_validator])
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    justification = models.TextField()
    change_type = models.CharField(max_length=10, choices=ChangeType.choices, default=ChangeType.NORMAL)
    risk = models.CharField(max_length=6, choices=Risk.choices, default=Risk.MEDIUM)
    impact = models.TextField(blank=True)
    rollback_plan = models.TextField(blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.CHECKS_RUNNING, db_index=True)
    approvals_required = models.PositiveSmallIntegerField(validators=[MinValueValidator(1)])
    policy = models.JSONField(default=dict, help_text="the gate policy as it was when the request was filed")
    # Who may decide, as rows, so that "awaiting my decision" is one SQL query on every database.
    approver_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    previous_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    evidence_digest = models.CharField(max_length=64, blank=True, help_text="sha256 of the evidence approvers see")
    # What the checks ran on: the evidence without the check results (candidate, the version behind
    # the alias, card, lineage, change record, policy). A decision on evidence that no longer matches
    # it sends the request back to checks_running (a new round; approvals count within one round).
    checks_basis = models.JSONField(default=dict, blank=True, help_text="the evidence the checks ran on")
    checks_basis_digest = models.CharField(max_length=64, blank=True, help_text="sha256 of checks_basis")
    checks_round = models.PositiveIntegerField(default=1)
    recheck_reason = models.CharField(max_length=1000, blank=True, help_text="why the checks ran again, in words")
    rechecked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    rolled_back_at = models.DateTimeField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    rollback_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["model", "target_alias", "state"])]

    def __str__(self) -> str:
        return f"Promotion #{self.pk}: {self.version} to {self.target_alias}" if self.pk else "Promotion"

    # --- catalog.services.ApprovedPromotion ---------------------------------------------------
    @property
    def model_version(self) -> ModelVersion:
        return self.version

    @property
    def is_approved(self) -> bool:
        """Enough distinct approvals, and not yet used: the one moment the alias may move."""
        return (
            self.state == self.State.AWAITING_APPROVAL
            and self.decisions.filter(decision=Decision.Kind.APPROVE, round=self.checks_round).count()
            >= self.approvals_required
        )

    @property
    def is_emergency(self) -> bool:
        return self.change_type == self.ChangeType.EMERGENCY

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


@dataclass(frozen=True)
class RollbackTicket:
    """What `alias_move` needs to move a protected alias back: made only by `promotion_rollback`,
    after it has checked who may roll back and that this is the alias's latest promotion."""

    pk: str
    model_version: ModelVersion
    target_alias: str
    is_approved: bool = True


class PromotionCheck(models.Model):
    """One automated check of a request, with the values it compared and the rule it applied."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        NO_DATA = "no_data", "No data"

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=40)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    rule = models.CharField(max_length=500, blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    ran_at = models.DateTimeField(null=True, blank=True)
    basis_digest = models.CharField(max_length=64, blank=True, help_text="the evidence digest the check ran on")

    class Meta:
        ordering = ["request", "pk"]

    def __str__(self) -> str:
        return f"{self.name}: {self.status}"


class ImmutableDecisionError(Exception):
    pass


class Decision(models.Model):
    """An approval or rejection. Immutable: saved once, never changed or deleted."""

    class Kind(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    request = models.ForeignKey(PromotionRequest, on_delete=models.PROTECT, related_name="decisions")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=7, choices=Kind.choices)
    comment = models.TextField(blank=True)
    evidence_digest = models.CharField(max_length=64)
    # The request's checks round the decision was made in: after a re-check, earlier approvals no
    # longer count and each approver decides once more on the fresh evidence.
    round = models.PositiveIntegerField(default=1)
    decided_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["request", "decided_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver", "round"], name="approvals_one_decision_each_round")
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.approver_id} on #{self.request_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None or not self._state.adding:
            raise ImmutableDecisionError("Decisions are immutable; they are recorded once and never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableDecisionError("Decisions are immutable; they are never deleted.")
