"""REST API of incident webhooks (shared/API.md "Monitoring"): platform admins list, create,
read, change and delete them and read each one's delivery log. Views validate, call one
selector or service and serialize; the access decision is the selectors' (403 on the
collection, 404 on one webhook for everyone else)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.validation import validated
from apps.monitoring.api import webhook_serializers as s
from apps.monitoring.webhooks import (
    attempts_of,
    webhook_create,
    webhook_delete,
    webhook_for,
    webhook_update,
    webhooks_visible,
)

ERRORS = {
    400: OpenApiResponse(description="invalid input, with field errors"),
    404: OpenApiResponse(description="not found, or the caller is not a platform admin"),
}


class WebhookListView(generics.ListAPIView):
    serializer_class = s.WebhookSerializer

    def get_queryset(self):
        return webhooks_visible(self.request.user)

    @extend_schema(responses={200: s.WebhookSerializer(many=True), 403: OpenApiResponse(description="not an admin")})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.WebhookWriteSerializer,
        responses={201: s.WebhookCreatedSerializer, 403: OpenApiResponse(description="not an admin"), **ERRORS},
        description="Create a webhook; without `secret` the portal generates one and shows it in this answer only.",
    )
    def post(self, request):
        data = validated(s.WebhookWriteSerializer, request.data)
        written = webhook_create(actor=request.user, request=request, **data)
        return Response(_created(written), status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(responses={200: s.WebhookSerializer, **ERRORS})
    def get(self, request, pk):
        return Response(s.WebhookSerializer(webhook_for(request.user, pk)).data)

    @extend_schema(
        request=s.WebhookUpdateSerializer,
        responses={200: s.WebhookCreatedSerializer, **ERRORS},
        description="Change fields; `secret` rotates it (empty: the portal generates one, shown in this answer only).",
    )
    def patch(self, request, pk):
        webhook = webhook_for(request.user, pk)
        data = validated(s.WebhookUpdateSerializer, request.data, partial=True)
        written = webhook_update(webhook=webhook, actor=request.user, request=request, **data)
        return Response(_created(written))

    @extend_schema(request=None, responses={204: None, **ERRORS})
    def delete(self, request, pk):
        webhook_delete(webhook=webhook_for(request.user, pk), actor=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListView(generics.ListAPIView):
    """The delivery log, one row per attempt, newest first (dead letters stay listed)."""

    serializer_class = s.WebhookAttemptSerializer

    def get_queryset(self):
        return attempts_of(webhook_for(self.request.user, self.kwargs["pk"]))

    @extend_schema(responses={200: s.WebhookAttemptSerializer(many=True), **ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


def _created(written) -> dict:
    return {**s.WebhookSerializer(written.webhook).data, "secret": written.generated_secret}
