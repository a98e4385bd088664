"""Erasure certificates: one row per data-subject erasure, the job and its proof at once.

The subject's key is never stored in clear: `key_digest` is a keyed hash (HMAC-SHA256 under the
portal's secret key) that the same key always gives, so a later access report can find earlier
certificates. A job queued from the portal keeps the key encrypted in the vault (`key_blob`) until
it has run; the blob is deleted then, whatever the outcome.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ErasureCertificate(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINAL = (State.SUCCEEDED, State.FAILED)

    key_digest = models.CharField(max_length=64, db_index=True, help_text="HMAC-SHA256 of the key, never the key")
    entity_name = models.CharField(max_length=100, blank=True, help_text="empty: every entity the key fits")
    key_blob = models.ForeignKey(
        "core.VaultBlob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="the key, encrypted, while a queued job needs it",
    )  # fmt: skip
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0.0)
    stage = models.CharField(max_length=200, blank=True, help_text="what the job is doing now")
    counts = models.JSONField(default=dict, blank=True, help_text="per store: what was removed")
    files = models.JSONField(default=list, blank=True, help_text="each rewritten file: digests before and after")
    skipped = models.JSONField(default=list, blank=True, help_text="places not touched, and why")
    document_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the certificate's JSON")
    audit_entry_id = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    queue = models.CharField(max_length=60, default="default")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"erasure certificate {self.pk}"

    @property
    def total_removed(self) -> int:
        return sum(int(v.get("removed", 0)) for v in self.counts.values() if isinstance(v, dict))
