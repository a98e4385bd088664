"""Serializers of the data-subject requests API: the subject (key, entity), the access report and
an erasure with its certificate (never the key: only its keyed hash)."""

from __future__ import annotations

from rest_framework import serializers

from apps.privacy.models import ErasureCertificate
from apps.privacy.stores import MAX_KEY_CHARS


class SubjectSerializer(serializers.Serializer):
    key = serializers.CharField(
        max_length=MAX_KEY_CHARS, trim_whitespace=False,
        help_text="the entity key; several join keys: their values in order, comma-separated",
    )  # fmt: skip
    entity = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text="an entity's name; none: every entity the key fits"
    )


class AccessReportSerializer(serializers.Serializer):
    key_digest = serializers.CharField(help_text="HMAC-SHA256 of the key")
    entities = serializers.ListField(child=serializers.CharField())
    region = serializers.CharField()
    offline = serializers.DictField(help_text="rows, files [{view, version, path, rows}]")
    online = serializers.DictField(help_text="keys, entries [{view, version, redis_key}]")
    training_sets = serializers.DictField(help_text="rows, sets [{id, name, path, rows}]")
    prediction_logs = serializers.DictField(help_text="rows, endpoints [{endpoint, rows}]")
    feedback = serializers.DictField(help_text="rows")
    not_indexed = serializers.ListField(child=serializers.CharField())
    skipped = serializers.ListField(child=serializers.DictField(), help_text="places in other regions, and why")
    certificates = serializers.ListField(child=serializers.IntegerField(), help_text="earlier erasures of this key")


class ErasureSerializer(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username")
    certificate_url = serializers.SerializerMethodField()

    class Meta:
        model = ErasureCertificate
        fields = [
            "id", "state", "progress", "stage", "key_digest", "entity_name", "counts", "files", "skipped",
            "document_sha256", "error", "requested_by", "created_at", "started_at", "finished_at", "certificate_url",
        ]  # fmt: skip

    def get_certificate_url(self, obj) -> str:
        return f"/api/v1/privacy/erasures/{obj.pk}/certificate"
