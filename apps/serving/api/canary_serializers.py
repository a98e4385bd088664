"""Serializers of canaries, feedback and A/B reports: input shapes (the services validate the
rules: steps, guards, prediction ids) and the answers, separately, for the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from apps.serving.services.canary_rules import DEFAULT_MIN_SAMPLES, MAX_INTERVAL_S, MIN_INTERVAL_S


class CanaryStartSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="A version number of the baseline route's model.")
    steps = serializers.ListField(
        child=serializers.IntegerField(), default=[5, 25, 50, 100],
        help_text="Traffic percentages, strictly rising, 1 to 100, ending at 100.",
    )  # fmt: skip
    step_interval_s = serializers.IntegerField(
        help_text=f"Seconds between evaluations, {MIN_INTERVAL_S} to {MAX_INTERVAL_S}."
    )
    guards = serializers.DictField(
        child=serializers.JSONField(), required=False,
        help_text="error_rate (most the canary's error rate may exceed the baseline's, absolute, e.g. 0.02), "
        "p95_latency_ms (most its p95 may exceed the baseline's), outcome (most its mean outcome may fall "
        f"below the baseline's; optional), min_samples (each side, default {DEFAULT_MIN_SAMPLES}).",
    )  # fmt: skip


class EvaluationSerializer(serializers.Serializer):
    step = serializers.IntegerField(help_text="index into steps")
    weight = serializers.IntegerField(required=False)
    at = serializers.CharField()
    baseline = serializers.DictField(
        required=False, help_text="requests, errors, error_rate, p95_ms (outcomes, outcome_mean)"
    )
    canary = serializers.DictField(required=False)
    verdict = serializers.ChoiceField(choices=["hold", "advance", "complete", "rollback"])
    note = serializers.CharField(required=False)


class CanarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    endpoint = serializers.CharField(source="endpoint.name")
    state = serializers.CharField()
    version = serializers.IntegerField(source="version.version")
    model = serializers.CharField(source="version.model.name")
    route = serializers.CharField(source="route_name")
    baseline_route = serializers.CharField()
    steps = serializers.ListField(child=serializers.IntegerField())
    step = serializers.IntegerField(help_text="index into steps")
    weight = serializers.IntegerField(help_text="the canary route's percent now")
    step_interval_s = serializers.IntegerField()
    guards = serializers.DictField()
    evaluations = EvaluationSerializer(many=True)
    reason = serializers.CharField()
    promotion_ref = serializers.CharField()
    started_by = serializers.CharField(source="started_by.username")
    started_at = serializers.DateTimeField()
    step_started_at = serializers.DateTimeField()
    next_evaluation_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.state != "running":
            data["next_evaluation_at"] = None
        return data


class FeedbackItemSerializer(serializers.Serializer):
    """One outcome (the body is one of these or a list of up to 1,000)."""

    prediction_id = serializers.CharField(help_text="as the predict answer gave it")
    outcome = serializers.JSONField(help_text="a number, or true/false (true counts as 1)")


class FeedbackResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    recorded = serializers.IntegerField(help_text="new outcomes stored")
    unchanged = serializers.IntegerField(help_text="already recorded with the same outcome (no-op)")


class AbReportQuerySerializer(serializers.Serializer):
    metric = serializers.ChoiceField(
        choices=["auto", "rate", "mean"], required=False, default="auto",
        help_text="rate: outcomes are 0/1 (two-proportion z-test); mean: Welch's t-test; auto decides by the data.",
    )  # fmt: skip
    min_effect = serializers.FloatField(
        required=False, min_value=1e-9, max_value=1e12,
        help_text="the smallest absolute difference worth finding (0.02 = two points for rates)",
    )  # fmt: skip
    since = serializers.DateTimeField(required=False, help_text="only predictions made since (ISO 8601)")


class AbRouteSerializer(serializers.Serializer):
    route = serializers.CharField()
    live = serializers.BooleanField()
    weight = serializers.IntegerField()
    n = serializers.IntegerField()
    rate = serializers.FloatField(required=False, allow_null=True)
    mean = serializers.FloatField(required=False, allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    difference = serializers.FloatField(allow_null=True, help_text="against the baseline")
    p_value = serializers.FloatField(allow_null=True, help_text="against the baseline")
    sample_size_needed = serializers.IntegerField(allow_null=True, help_text="outcomes per route for min_effect")
    more_needed = serializers.IntegerField(allow_null=True)
    enough_data = serializers.BooleanField()


class AbReportSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=["rate", "mean"])
    test = serializers.ChoiceField(choices=["two_proportion_z", "welch_t"])
    min_effect = serializers.FloatField(allow_null=True)
    since = serializers.DateTimeField(allow_null=True)
    baseline = serializers.CharField(allow_null=True)
    compared = serializers.ListField(child=serializers.CharField(), allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    routes = AbRouteSerializer(many=True)
    verdict = serializers.CharField()
