"""The caller's own notifications (API.md "Promotions, gate policies, notifications")."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.validation import validated_query
from apps.notifications import selectors, services
from apps.notifications.api import serializers as s


class NotificationListView(generics.ListAPIView):
    serializer_class = s.NotificationSerializer

    def get_queryset(self):
        filters = validated_query(s.NotificationFiltersSerializer, self.request.query_params)
        # A form-style query string reads a missing boolean as false: no `unread` means all.
        unread = filters.get("unread") if "unread" in self.request.query_params else None
        return selectors.notifications_of(self.request.user, unread=unread)

    @extend_schema(parameters=[s.NotificationFiltersSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class NotificationReadView(APIView):
    @extend_schema(request=None, responses={204: None, 404: OpenApiResponse(description="not yours or missing")})
    def post(self, request, pk):
        notification = selectors.notification_for(request.user, pk)
        services.notification_read(actor=request.user, notification=notification)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationReadAllView(APIView):
    @extend_schema(request=None, responses={200: s.ReadAllSerializer})
    def post(self, request):
        return Response({"marked": services.notifications_read_all(actor=request.user)})
