"""REST endpoints for serving endpoints: list and create, one endpoint (GET, PATCH), its traffic.

Each view validates with `validated` / `validated_query`, calls one service or `_for` selector and
serializes. Services check permissions and raise domain errors, which the API exception handler
maps; a stranger gets 404. Sharing is `apps.core.api.sharing` (wired in urls.py).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.validation import validated, validated_query
from apps.serving.api import serializers as s
from apps.serving.selectors import endpoint_for, endpoints_visible, traffic_of, with_serving_versions
from apps.serving.services.endpoints import endpoint_create, endpoint_update

ERRORS = {
    400: OpenApiResponse(description="invalid input"),
    404: OpenApiResponse(description="not found or not visible"),
}


def _detail(endpoint) -> dict:
    return s.EndpointSerializer(with_serving_versions([endpoint])[0]).data


class EndpointListView(generics.ListAPIView):
    serializer_class = s.EndpointSerializer

    def get_queryset(self):
        filters = validated_query(s.EndpointFiltersSerializer, self.request.query_params)
        return endpoints_visible(self.request.user, filters)

    def paginate_queryset(self, queryset):
        return with_serving_versions(super().paginate_queryset(queryset))

    @extend_schema(parameters=[s.EndpointFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.EndpointCreateSerializer, responses={201: s.EndpointSerializer, **ERRORS})
    def post(self, request):
        data = validated(s.EndpointCreateSerializer, request.data)
        created = endpoint_create(actor=request.user, **data)
        return Response(_detail(endpoint_for(request.user, created.name)), status=status.HTTP_201_CREATED)


class EndpointDetailView(APIView):
    @extend_schema(responses={200: s.EndpointSerializer, **ERRORS})
    def get(self, request, name):
        return Response(_detail(endpoint_for(request.user, name)))

    @extend_schema(
        request=s.EndpointUpdateSerializer,
        responses={200: s.EndpointSerializer, 409: OpenApiResponse(description="a canary is running"), **ERRORS},
        description="Change description, log_sample_rate or the routes (the whole list replaces the old one).",
    )
    def patch(self, request, name):
        endpoint = endpoint_for(request.user, name)
        data = validated(s.EndpointUpdateSerializer, request.data, partial=True)
        endpoint_update(actor=request.user, endpoint=endpoint, **data)
        return Response(_detail(endpoint_for(request.user, name)))


class TrafficView(APIView):
    @extend_schema(parameters=[s.TrafficQuerySerializer], responses={200: s.TrafficSerializer, **ERRORS})
    def get(self, request, name):
        endpoint = endpoint_for(request.user, name)
        minutes = validated_query(s.TrafficQuerySerializer, request.query_params)["minutes"]
        body = {"endpoint": endpoint.name, **traffic_of(endpoint, minutes)}
        return Response(s.TrafficSerializer(body).data)
