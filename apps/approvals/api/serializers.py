"""Thin serializers for the approvals API: input classes read by `validated(...)`, output classes
that shape responses and the OpenAPI schema. Rules live in `apps.approvals.services`."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.approvals.models import Decision, GatePolicy, PromotionCheck, PromotionRequest

TEXT_MAX = 20000


class StrictSerializer(serializers.Serializer):
    """A nested object whose unknown keys are a 400 too (`validated` checks only the top level)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# --- promotions: input -----------------------------------------------------------------------------


class ChangeSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=PromotionRequest.ChangeType.values, default="normal")
    risk = serializers.ChoiceField(choices=PromotionRequest.Risk.values, default="medium")
    impact = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="")
    rollback_plan = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="")
    window_start = serializers.DateTimeField(required=False, allow_null=True, default=None)
    window_end = serializers.DateTimeField(required=False, allow_null=True, default=None)


class PromotionCreateSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=100, help_text="the model's name")
    version = serializers.IntegerField(min_value=1)
    target_alias = serializers.CharField(max_length=40)
    justification = serializers.CharField(max_length=TEXT_MAX)
    change = ChangeSerializer(required=False)


class PromotionFiltersSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=PromotionRequest.State.values, required=False)
    model = serializers.CharField(required=False, max_length=100, help_text="the model's name")
    awaiting = serializers.ChoiceField(choices=["me"], required=False, help_text="me: waiting for my decision")
    requested_by = serializers.ChoiceField(choices=["me"], required=False, help_text="me: requests I filed")


class DecisionCreateSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=TEXT_MAX, default="")
    evidence_digest = serializers.CharField(max_length=64, help_text="the digest of the evidence you decided on")
    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=12,
        help_text="a current TOTP code (or send it as the X-OTP header): required of users who must have "
        "two-factor sign-in, else 403 step_up_required",
    )


class RollbackSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=TEXT_MAX)


# --- promotions: output ----------------------------------------------------------------------------


class PromotionCheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = PromotionCheck
        fields = ["name", "status", "rule", "evidence", "params", "ran_at", "basis_digest"]


class DecisionSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username")

    class Meta:
        model = Decision
        fields = ["approver", "decision", "comment", "evidence_digest", "round", "decided_at"]


class PromotionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    version = serializers.IntegerField(source="version.version")
    requested_by = serializers.CharField(source="requested_by.username")
    previous_version = serializers.SerializerMethodField()

    class Meta:
        model = PromotionRequest
        fields = [
            "id",
            "model",
            "version",
            "target_alias",
            "state",
            "requested_by",
            "change_type",
            "risk",
            "approvals_required",
            "previous_version",
            "created_at",
            "expires_at",
            "decided_at",
            "promoted_at",
        ]

    def get_previous_version(self, obj) -> int | None:
        return obj.previous_version.version if obj.previous_version_id else None


class PromotionDetailSerializer(PromotionSerializer):
    change = serializers.SerializerMethodField()
    checks = PromotionCheckSerializer(many=True)
    decisions = DecisionSerializer(many=True)
    rolled_back_by = serializers.SerializerMethodField()

    class Meta(PromotionSerializer.Meta):
        fields = [
            *PromotionSerializer.Meta.fields,
            "justification",
            "change",
            "checks",
            "decisions",
            "evidence_digest",
            "checks_basis_digest",
            "checks_round",
            "recheck_reason",
            "rechecked_at",
            "policy",
            "rolled_back_at",
            "rolled_back_by",
            "rollback_comment",
        ]

    @extend_schema_field(ChangeSerializer)
    def get_change(self, obj) -> dict:
        return {
            "type": obj.change_type,
            "risk": obj.risk,
            "impact": obj.impact,
            "rollback_plan": obj.rollback_plan,
            "window_start": obj.window_start,
            "window_end": obj.window_end,
        }

    def get_rolled_back_by(self, obj) -> str | None:
        return obj.rolled_back_by.username if obj.rolled_back_by_id else None


# --- gate policies ---------------------------------------------------------------------------------


class GatePolicyWriteSerializer(serializers.Serializer):
    approver_groups = serializers.ListField(child=serializers.CharField(max_length=150), max_length=50)
    approvals_required = serializers.IntegerField(min_value=1, max_value=20)
    checks = serializers.JSONField(required=False, help_text='[{"name": "metric_threshold", "params": {...}}]')
    change_window = serializers.JSONField(
        required=False, allow_null=True, help_text='{"days": [0..6], "hours": [start, end], "timezone": "..."}'
    )
    expiry_hours = serializers.IntegerField(min_value=1, max_value=90 * 24, required=False)


class GatePolicyCreateSerializer(GatePolicyWriteSerializer):
    model = serializers.CharField(max_length=100, required=False, allow_null=True, help_text="null: the default")
    alias = serializers.CharField(max_length=40)


class GatePolicyFiltersSerializer(serializers.Serializer):
    alias = serializers.CharField(required=False, max_length=40)
    model = serializers.CharField(required=False, max_length=100)


class GatePolicySerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField()
    updated_by = serializers.SerializerMethodField()

    class Meta:
        model = GatePolicy
        fields = [
            "id",
            "model",
            "alias",
            "approver_groups",
            "approvals_required",
            "checks",
            "change_window",
            "expiry_hours",
            "updated_by",
            "updated_at",
        ]

    def get_model(self, obj) -> str | None:
        return obj.model.name if obj.model_id else None

    def get_updated_by(self, obj) -> str | None:
        return obj.updated_by.username if obj.updated_by_id else None
