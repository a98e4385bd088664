"""`POST /api/v1/endpoints/{name}/predict` through Django: signed-in browsers and scripts (token
callers normally take the lean ASGI path, apps/serving/inference/fastpath.py, ahead of Django).

DRF authenticates, checks the `predict` scope (PortalPermission with `required_scope`) and the
caller's API rate (the default throttle); the rest is `predict_call`, the very code the lean path
runs, on the raw body, so both answer the same statuses and JSON (its body rules are those of
`validated()`: unknown fields 400, each bad field named). The serializers below document the
request and the answer in the OpenAPI schema.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.parsers import PortalJSONParser
from apps.serving.inference.predict import predict_call


class PredictInputSerializer(serializers.Serializer):
    inputs = serializers.JSONField(
        help_text='Rows `[[...], ...]` for a model with one input `[batch, N]`, or named columns `{"column": [...]}`.'
    )
    key = serializers.CharField(
        required=False, max_length=256, help_text="Caller key: the same key keeps its route while weights hold."
    )


class PredictOutputSerializer(serializers.Serializer):
    outputs = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField()), help_text="Per output: one value per row."
    )
    model = serializers.CharField()
    version = serializers.IntegerField()
    route = serializers.CharField()
    prediction_id = serializers.CharField(help_text="Send it back with the outcome: POST .../feedback.")


ERRORS = {
    400: OpenApiResponse(description="The body, a column, a shape or a dtype is wrong (named)."),
    401: OpenApiResponse(description="No, bad, expired or revoked credentials."),
    403: OpenApiResponse(description="The token lacks 'predict' or does not name this endpoint."),
    404: OpenApiResponse(description="No such endpoint, archived, or not visible to the caller."),
    413: OpenApiResponse(description="Over the rows-per-call or body limit."),
    429: OpenApiResponse(description="Over the user's or the token's rate (Retry-After)."),
}


class PredictView(APIView):
    required_scope = "predict"
    parser_classes = [PortalJSONParser]  # the raw body is read; this documents JSON as the one media type

    @extend_schema(request=PredictInputSerializer, responses={200: PredictOutputSerializer, **ERRORS})
    def post(self, request, name: str):
        status, body, headers = predict_call(
            user=request.user,
            token=request.auth,
            endpoint_name=name,
            body=request.body,
            client=request.META.get("REMOTE_ADDR", ""),
        )
        response = Response(body, status=status)
        for header, value in headers:
            response[header.decode("latin-1")] = value.decode("latin-1")
        return response
