"""Thin serializers of endpoints, routes and traffic: shapes for the API and its OpenAPI schema.

Rules live in apps/serving/services/endpoints.py; these only check types and shapes so a bad body
gets field errors by position (`{"routes": [{}, {"weight": [...]}]}`). Input and output classes are
separate. Predict, feedback, canary and scoring shapes are in their own modules.
"""

from __future__ import annotations

from functools import cache

from django.urls import reverse
from rest_framework import serializers

from apps.serving.models import Route
from apps.serving.selectors import TRAFFIC_MAX_MINUTES
from apps.serving.services.endpoints import MAX_ROUTES


@cache
def _endpoints_url() -> str:
    """`/api/v1/endpoints/`, reversed once per process (a list page would pay once per row)."""
    return reverse("api-v1:serving:endpoint-list")


def endpoint_api_url(name: str) -> str:
    return f"{_endpoints_url()}{name}/"


# --- input ----------------------------------------------------------------------------------


ROLLOUT_HELP = (
    "how a move of the alias the baseline route follows reaches traffic: {} switches at once; "
    '{"steps": [5, 25, 50, 100], "step_interval_s": 600, "guards": {...}} ramps it in as a canary'
)


class EndpointFiltersSerializer(serializers.Serializer):
    """The endpoint list's query string (API and OpenAPI; the page reads the same names)."""

    q = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="search in name and description"
    )
    model = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="has a route on this model (by name)"
    )
    region = serializers.CharField(required=False, allow_blank=True, max_length=41)
    archived = serializers.BooleanField(required=False, default=False, help_text="true: archived endpoints too")


class RouteInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=40)
    model = serializers.CharField(max_length=100, help_text="the registered model, by name")
    version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="a pinned version number (or give alias)"
    )
    alias = serializers.CharField(
        required=False, allow_blank=True, max_length=40, help_text="follow this alias of the model (or give version)"
    )
    weight = serializers.IntegerField(
        required=False, default=100, min_value=0, max_value=100,
        help_text="live: percent of traffic (live weights sum to 100); shadow: percent of live traffic copied",
    )  # fmt: skip
    mode = serializers.ChoiceField(choices=Route.Mode.values, required=False, default=Route.Mode.LIVE)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = {key: ["Unknown field."] for key in data if key not in self.fields}
            if unknown:
                raise serializers.ValidationError(unknown)
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        if (attrs.get("version") is not None) == bool(attrs.get("alias")):
            raise serializers.ValidationError({"version": ["Give exactly one of version and alias."]})
        return attrs


class EndpointCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000, default="")
    region = serializers.CharField(required=False, max_length=41, default="default")
    routes = RouteInputSerializer(many=True, allow_empty=False, max_length=MAX_ROUTES)
    team = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=100,
        help_text="slug of a team you are in: it becomes a viewer",
    )  # fmt: skip
    log_sample_rate = serializers.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text="share of requests logged (default from settings)"
    )
    rollout = serializers.JSONField(required=False, help_text=ROLLOUT_HELP)


class EndpointUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    log_sample_rate = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    rollout = serializers.JSONField(required=False, help_text=ROLLOUT_HELP)
    routes = RouteInputSerializer(
        many=True, required=False, allow_empty=False, max_length=MAX_ROUTES,
        help_text="the whole new route list; a route keeping its name keeps its row",
    )  # fmt: skip


class TrafficQuerySerializer(serializers.Serializer):
    minutes = serializers.IntegerField(required=False, default=60, min_value=1, max_value=TRAFFIC_MAX_MINUTES)


# --- output ---------------------------------------------------------------------------------


class RouteSerializer(serializers.Serializer):
    name = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField(allow_null=True, help_text="the pinned version; null when following an alias")
    alias = serializers.CharField(allow_null=True, help_text="the alias it follows; null when pinned")
    weight = serializers.IntegerField()
    mode = serializers.ChoiceField(choices=Route.Mode.values)
    serving_version = serializers.IntegerField(
        allow_null=True, help_text="the version it serves now (the alias resolved); null if the alias is gone"
    )

    def to_representation(self, route: Route) -> dict:
        serving = getattr(route, "serving_version", None)
        return {
            "name": route.name,
            "model": route.model.name,
            "version": route.version.version if route.version_id else None,
            "alias": route.alias or None,
            "weight": route.weight,
            "mode": route.mode,
            "serving_version": serving,
        }


class EndpointSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    region = serializers.CharField()
    log_sample_rate = serializers.FloatField()
    rollout = serializers.JSONField(help_text=ROLLOUT_HELP)
    owner = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    archived = serializers.BooleanField()
    routes = RouteSerializer(many=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.CharField()

    def to_representation(self, endpoint) -> dict:
        return {
            "name": endpoint.name,
            "description": endpoint.description,
            "region": endpoint.region,
            "log_sample_rate": endpoint.log_sample_rate,
            "rollout": endpoint.rollout,
            "owner": endpoint.owner.username,
            "team": endpoint.team.slug if endpoint.team_id else None,
            "archived": endpoint.archived_at is not None,
            "routes": [RouteSerializer().to_representation(r) for r in endpoint.routes.all()],
            "created_at": serializers.DateTimeField().to_representation(endpoint.created_at),
            "updated_at": serializers.DateTimeField().to_representation(endpoint.updated_at),
            "url": endpoint_api_url(endpoint.name),
        }


class TrafficSummarySerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    rows = serializers.IntegerField()
    mean_latency_ms = serializers.FloatField(allow_null=True)
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True, help_text="above the last bucket edge: that edge")
    shadow_compared = serializers.IntegerField()
    shadow_agreement_rate = serializers.FloatField(allow_null=True)
    shadow_mean_abs_diff = serializers.FloatField(allow_null=True)
    shadow_dropped = serializers.IntegerField()
    logs_dropped = serializers.IntegerField()


class TrafficRouteSerializer(TrafficSummarySerializer):
    route = serializers.CharField()
    mode = serializers.CharField()
    versions = serializers.ListField(child=serializers.IntegerField())


class TrafficMinuteSerializer(TrafficSummarySerializer):
    route = serializers.CharField()
    minute = serializers.DateTimeField()


class TrafficSerializer(serializers.Serializer):
    endpoint = serializers.CharField()
    minutes = serializers.IntegerField()
    since = serializers.DateTimeField()
    total = TrafficSummarySerializer()
    routes = TrafficRouteSerializer(many=True)
    series = TrafficMinuteSerializer(many=True, help_text="per route and minute, oldest first")
