"""`/api/v1/endpoints/{name}/canary` (GET the newest canary, POST start one) and `.../canary/abort`.

Thin: the endpoint through `endpoint_for` (strangers 404), one service (which requires `change`
and raises Conflict / ValidationError), the canary serialized."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.validation import validated
from apps.core.errors import NotFound
from apps.serving.api.canary_serializers import CanarySerializer, CanaryStartSerializer
from apps.serving.selectors import endpoint_for
from apps.serving.services.canaries import canary_abort, canary_start
from apps.serving.traffic_selectors import canary_latest

ERRORS = {
    400: OpenApiResponse(description="invalid steps, interval, guards or version (named)"),
    403: OpenApiResponse(description="may view the endpoint but not change it"),
    404: OpenApiResponse(description="no such endpoint, not visible, or no canary yet"),
    409: OpenApiResponse(description="one runs already / none runs / protected alias without an approved promotion"),
}


class CanaryView(APIView):
    @extend_schema(responses={200: CanarySerializer, **ERRORS})
    def get(self, request, name: str):
        canary = canary_latest(endpoint_for(request.user, name))
        if canary is None:
            raise NotFound(f"No canary has run on {name}; start one with POST /api/v1/endpoints/{name}/canary")
        return Response(CanarySerializer(canary).data)

    @extend_schema(request=CanaryStartSerializer, responses={201: CanarySerializer, **ERRORS})
    def post(self, request, name: str):
        endpoint = endpoint_for(request.user, name)
        canary = canary_start(actor=request.user, endpoint=endpoint, **validated(CanaryStartSerializer, request.data))
        return Response(CanarySerializer(canary).data, status=status.HTTP_201_CREATED)


class CanaryAbortView(APIView):
    @extend_schema(request=None, responses={200: CanarySerializer, **ERRORS})
    def post(self, request, name: str):
        canary = canary_abort(actor=request.user, endpoint=endpoint_for(request.user, name))
        return Response(CanarySerializer(canary).data)
