"""Serializers of the incident-webhook API: the input shapes (the service validates the rules),
the webhook as shown (never its secret), and one row of the delivery log per attempt."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api.rows import iso
from apps.monitoring.models import IncidentWebhook, WebhookAttempt
from apps.monitoring.webhooks.services import url_problem

EVENTS = list(IncidentWebhook.EVENTS)
SEVERITIES = list(IncidentWebhook.SEVERITIES)


class WebhookWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    url = serializers.CharField(max_length=500, help_text="http:// or https://")
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENTS), allow_empty=False, max_length=3)
    min_severity = serializers.ChoiceField(choices=SEVERITIES, default="warning")
    active = serializers.BooleanField(default=True)
    secret = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, max_length=512,
        help_text="16-512 characters; none or empty: the portal generates one and answers it once",
    )  # fmt: skip

    def validate_url(self, value: str) -> str:
        problem = url_problem(value.strip())
        if problem:
            raise serializers.ValidationError(problem)
        return value.strip()


class WebhookUpdateSerializer(WebhookWriteSerializer):
    """PATCH: any of the fields; `secret` rotates it (empty: a generated one, answered once)."""

    min_severity = serializers.ChoiceField(choices=SEVERITIES, required=False)
    active = serializers.BooleanField(required=False)


class WebhookSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = IncidentWebhook
        fields = [
            "id",
            "name",
            "url",
            "events",
            "min_severity",
            "active",
            "created_by",
            "created_at",
            "updated_at",
            "secret_rotated_at",
        ]


class WebhookCreatedSerializer(WebhookSerializer):
    """The one answer that shows a secret: the one the portal just generated (else null)."""

    secret = serializers.CharField(allow_null=True, help_text="the generated secret, shown only this once")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookAttemptSerializer(serializers.ModelSerializer):
    delivery_id = serializers.UUIDField(source="delivery.delivery_id")
    event = serializers.CharField(source="delivery.event")

    class Meta:
        model = WebhookAttempt
        fields = ["delivery_id", "event", "attempt", "status_code", "error", "state", "next_attempt_at", "at"]

    def to_representation(self, obj) -> dict:
        # The delivery log is read in pages of up to 500 rows: plain dicts (apps/core/api/rows.py).
        return {
            "delivery_id": str(obj.delivery.delivery_id),
            "event": obj.delivery.event,
            "attempt": obj.attempt,
            "status_code": obj.status_code,
            "error": obj.error,
            "state": obj.state,
            "next_attempt_at": iso(obj.next_attempt_at),
            "at": iso(obj.at),
        }
