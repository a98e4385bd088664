from __future__ import annotations

import csv

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.models import AuditEntry
from apps.core.selectors import AUDIT_FILTERS, audit_csv_rows, audit_entries_visible, audit_verify


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None)
    object_type = serializers.CharField(source="content_type.model")
    action = serializers.CharField(source="get_action_display")
    event = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "timestamp",
            "actor",
            "action",
            "event",
            "object_type",
            "object_pk",
            "object_repr",
            "changes",
            "remote_addr",
            "additional_data",
            "prev_hash",
            "entry_hash",
        ]

    def get_event(self, obj) -> str:
        return (obj.additional_data or {}).get("event", obj.get_action_display())


class _Echo:
    def write(self, value):
        return value


@extend_schema(
    parameters=[OpenApiParameter(name, str, description=help_text) for name, help_text in AUDIT_FILTERS.items()]
    + [OpenApiParameter("format", str, enum=["json", "csv"], description="csv streams the filtered trail")],
)
class AuditListView(generics.ListAPIView):
    """The audit trail, for platform admins and auditors. Read-only by construction."""

    serializer_class = AuditEntrySerializer

    def get_queryset(self):
        return audit_entries_visible(self.request.user, self.request.query_params)

    def list(self, request, *args, **kwargs):
        if request.query_params.get("format") == "csv":
            writer = csv.writer(_Echo())
            rows = (writer.writerow(row) for row in audit_csv_rows(self.get_queryset()))
            response = StreamingHttpResponse(rows, content_type="text/csv")
            response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
            return response
        return super().list(request, *args, **kwargs)


class AuditVerifyView(APIView):
    @extend_schema(
        responses=inline_serializer(
            "AuditVerify",
            {
                "ok": serializers.BooleanField(),
                "checked": serializers.IntegerField(),
                "first_broken_id": serializers.IntegerField(allow_null=True),
                "reason": serializers.CharField(),
            },
        )
    )
    def get(self, request):
        return Response(audit_verify(actor=request.user).as_dict())
