from __future__ import annotations

from rest_framework import serializers

from apps.notifications.models import Notification


class NotificationFiltersSerializer(serializers.Serializer):
    unread = serializers.BooleanField(required=False, help_text="true: unread only; false: read only")


class NotificationSerializer(serializers.ModelSerializer):
    object = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "url", "object", "created_at", "read_at"]
        read_only_fields = fields

    def get_object(self, obj) -> dict | None:
        return {"type": obj.object_type, "id": obj.object_id} if obj.object_type else None


class ReadAllSerializer(serializers.Serializer):
    marked = serializers.IntegerField()
