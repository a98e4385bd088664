"""`POST /api/v1/endpoints/{name}/feedback` (outcomes by prediction id) and `GET .../ab-report`.

Feedback takes a token whose `predict` scope names the endpoint, or `write` (the service checks
the endpoint on the token); the body is one `{"prediction_id", "outcome"}` or a list of them, which
the service validates item by item (errors name the item by position)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.validation import validated_query
from apps.serving.api.canary_serializers import (
    AbReportQuerySerializer,
    AbReportSerializer,
    FeedbackItemSerializer,
    FeedbackResultSerializer,
)
from apps.serving.selectors import endpoint_for
from apps.serving.services.feedback import feedback_record
from apps.serving.traffic_selectors import ab_report_of

FEEDBACK_BODY = PolymorphicProxySerializer(
    component_name="FeedbackBody",
    serializers=[FeedbackItemSerializer, FeedbackItemSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


class FeedbackView(APIView):
    required_scope = ("predict", "write")

    @extend_schema(
        request=FEEDBACK_BODY,
        responses={
            200: FeedbackResultSerializer,
            400: OpenApiResponse(description="a malformed item or an id this endpoint did not issue (by position)"),
            403: OpenApiResponse(description="the token does not name this endpoint"),
            404: OpenApiResponse(description="no such endpoint or not visible"),
            409: OpenApiResponse(description="a different outcome than the one recorded"),
            413: OpenApiResponse(description="more than 1,000 items"),
        },
    )
    def post(self, request, name: str):
        endpoint = endpoint_for(request.user, name)
        result = feedback_record(actor=request.user, endpoint=endpoint, body=request.data, token=request.auth)
        return Response(FeedbackResultSerializer(result).data)


class AbReportView(APIView):
    @extend_schema(parameters=[AbReportQuerySerializer], responses={200: AbReportSerializer})
    def get(self, request, name: str):
        filters = validated_query(AbReportQuerySerializer, request.query_params)
        endpoint = endpoint_for(request.user, name)
        report = ab_report_of(
            endpoint, metric=filters["metric"], min_effect=filters.get("min_effect"), since=filters.get("since")
        )
        return Response(AbReportSerializer(report).data)
