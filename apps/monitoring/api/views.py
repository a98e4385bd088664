"""REST API of monitoring (shared/API.md "### Monitoring"): drift reports, alerts, reference
profiles and an endpoint's monitoring. Each view validates, calls one service or selector and
serializes; access is decided by the selectors and services (strangers get 404)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.selectors import version_for
from apps.core.api.parsers import PortalJSONParser
from apps.core.api.validation import validated, validated_query
from apps.core.errors import NotFound
from apps.features.selectors import feature_view_for
from apps.monitoring import selectors
from apps.monitoring.api import serializers as s
from apps.monitoring.services.alerts import alert_acknowledge, alert_assign, alert_resolve
from apps.monitoring.services.profiles import profile_request
from apps.monitoring.services.reports import monitor_update, report_request
from apps.serving.selectors import endpoint_for

ERRORS = {
    400: OpenApiResponse(description="invalid input (named)"),
    404: OpenApiResponse(description="not found or not visible"),
}
ACTION_ERRORS = {
    **ERRORS,
    403: OpenApiResponse(description="may view but not act on it"),
    409: OpenApiResponse(description="not allowed in its current state"),
}


# --- drift reports ---------------------------------------------------------------------------------


class ReportListView(generics.ListAPIView):
    serializer_class = s.ReportSerializer

    def get_queryset(self):
        return selectors.reports_visible(
            self.request.user, validated_query(s.ReportFiltersSerializer, self.request.query_params)
        )

    @extend_schema(parameters=[s.ReportFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ReportCreateSerializer,
        responses={202: s.ReportSerializer, **ERRORS},
        description='Run a check now: `{"endpoint", "start", "end", "route"?}` or `{"feature_view", "reference": '
        '{start, end}, "current": {start, end}}`; optional `thresholds` and per-feature `overrides`. 202 with the '
        "queued report.",
    )
    def post(self, request):
        data = validated(s.ReportCreateSerializer, request.data)
        common = {"thresholds": data.get("thresholds"), "overrides": data.get("overrides")}
        if "endpoint" in data:
            report = report_request(
                actor=request.user, endpoint=endpoint_for(request.user, data["endpoint"]),
                route=data.get("route") or "", start=data["start"], end=data["end"], **common,
            )  # fmt: skip
        else:
            report = report_request(
                actor=request.user, feature_view=feature_view_for(request.user, data["feature_view"]),
                start=data["current"]["start"], end=data["current"]["end"],
                reference_start=data["reference"]["start"], reference_end=data["reference"]["end"], **common,
            )  # fmt: skip
        return Response(s.ReportSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class ReportDetailView(APIView):
    @extend_schema(responses={200: s.ReportDetailSerializer, **ERRORS})
    def get(self, request, pk: int):
        report = selectors.report_for(request.user, pk)
        masked = selectors.report_masked(request.user, report)
        return Response(s.ReportDetailSerializer(report, context={"masked": masked}).data)


# --- alerts ----------------------------------------------------------------------------------------


class AlertListView(generics.ListAPIView):
    serializer_class = s.AlertSerializer

    def get_queryset(self):
        return selectors.alerts_visible(
            self.request.user, validated_query(s.AlertFiltersSerializer, self.request.query_params)
        )

    @extend_schema(parameters=[s.AlertFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def _alert_answer(request, pk: int) -> Response:
    alert = selectors.alert_for(request.user, pk)
    return Response(s.AlertSerializer(alert, context={"history": True}).data)


class AlertDetailView(APIView):
    @extend_schema(responses={200: s.AlertSerializer, **ERRORS})
    def get(self, request, pk: int):
        return _alert_answer(request, pk)

    @extend_schema(request=s.AlertPatchSerializer, responses={200: s.AlertSerializer, **ACTION_ERRORS})
    def patch(self, request, pk: int):
        data = validated(s.AlertPatchSerializer, request.data)
        alert_assign(
            alert=selectors.alert_for(request.user, pk), actor=request.user, assignee=data.get("assignee") or None
        )
        return _alert_answer(request, pk)


class AlertAcknowledgeView(APIView):
    @extend_schema(request=s.AlertActionSerializer, responses={200: s.AlertSerializer, **ACTION_ERRORS})
    def post(self, request, pk: int):
        note = validated(s.AlertActionSerializer, request.data or {}).get("note", "")
        alert_acknowledge(alert=selectors.alert_for(request.user, pk), actor=request.user, note=note)
        return _alert_answer(request, pk)


class AlertResolveView(APIView):
    @extend_schema(request=s.AlertActionSerializer, responses={200: s.AlertSerializer, **ACTION_ERRORS})
    def post(self, request, pk: int):
        note = validated(s.AlertActionSerializer, request.data or {}).get("note", "")
        alert_resolve(alert=selectors.alert_for(request.user, pk), actor=request.user, note=note)
        return _alert_answer(request, pk)


# --- reference profiles ----------------------------------------------------------------------------


class ProfileView(APIView):
    parser_classes = [MultiPartParser, FormParser, PortalJSONParser]

    @extend_schema(responses={200: s.ProfileSerializer, **ERRORS})
    def get(self, request, name: str, version: str):
        found = version_for(request.user, name, version)
        profile = selectors.profile_for(request.user, found)
        if profile is None:
            raise NotFound(
                f"{found} has no reference profile yet; build one with POST /api/v1/models/{name}/versions/{version}/profile"
            )
        return Response(s.ProfileSerializer(profile).data)

    @extend_schema(
        request={"multipart/form-data": s.ProfileCreateSerializer, "application/json": s.ProfileCreateSerializer},
        responses={202: s.ProfileSerializer, 409: OpenApiResponse(description="a build is running"), **ERRORS},
        description="(Re)build the profile from the version's training data, or from a Parquet/CSV `file` with its "
        "feature columns; 202 with the queued profile.",
    )
    def post(self, request, name: str, version: str):
        data = validated(s.ProfileCreateSerializer, request.data)
        found = version_for(request.user, name, version)
        profile = profile_request(actor=request.user, version=found, file=data.get("file"))
        return Response(s.ProfileSerializer(profile).data, status=status.HTTP_202_ACCEPTED)


# --- an endpoint's monitoring ------------------------------------------------------------------------


class EndpointMonitoringView(APIView):
    @extend_schema(
        parameters=[s.OverviewQuerySerializer], responses={200: OpenApiResponse(description="overview"), **ERRORS}
    )
    def get(self, request, name: str):
        query = validated_query(s.OverviewQuerySerializer, request.query_params)
        endpoint = endpoint_for(request.user, name)
        overview = selectors.overview_of(request.user, endpoint, minutes=query["minutes"])
        overview["alerts"] = s.AlertSerializer(overview["alerts"], many=True).data
        overview["quality"] = selectors.model_quality(endpoint, days=query["days"])
        return Response(overview)

    @extend_schema(
        request=s.MonitorPatchSerializer, responses={200: OpenApiResponse(description="overview"), **ACTION_ERRORS}
    )
    def patch(self, request, name: str):
        data = validated(s.MonitorPatchSerializer, request.data)
        monitor_update(actor=request.user, endpoint=endpoint_for(request.user, name), **data)
        return self.get(request, name)
