"""Shared base models and the tamper-evident audit entry."""

from __future__ import annotations

import hashlib
import json

from auditlog.models import AbstractLogEntry
from django.conf import settings
from django.db import connection, models, transaction

GENESIS_HASH = "0" * 64
# Any constant works; it only has to be the same in every process that writes audit entries.
_AUDIT_CHAIN_LOCK_KEY = 784_310_221


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OwnedModel(TimestampedModel):
    """Every domain object has an owner, may belong to a team, and is shared via guardian."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    team = models.ForeignKey("accounts.Team", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        abstract = True


class AuditEntry(AbstractLogEntry):
    """auditlog's entry plus a hash chain: each entry stores the previous hash and its own.

    entry_hash = sha256(prev_hash || canonical content). Editing, deleting or inserting an entry
    anywhere breaks the chain from that point, which `audit_verify` reports.
    """

    prev_hash = models.CharField(max_length=64, blank=True, default="")
    entry_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        ordering = ["-id"]
        indexes = [models.Index(fields=["content_type", "object_pk"]), models.Index(fields=["actor", "-id"])]

    def canonical_content(self) -> bytes:
        body = {
            "id": self.pk,
            "content_type": self.content_type_id,
            "object_pk": self.object_pk,
            "object_repr": self.object_repr,
            "action": self.action,
            "changes": self.changes,
            "changes_text": self.changes_text,
            "actor": self.actor_id,
            "actor_email": self.actor_email,
            "remote_addr": self.remote_addr,
            "timestamp": self.timestamp.isoformat(timespec="microseconds") if self.timestamp else None,
            "additional_data": self.additional_data,
            "cid": self.cid,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()

    def compute_hash(self, prev_hash: str) -> str:
        return hashlib.sha256(prev_hash.encode() + self.canonical_content()).hexdigest()

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit entries are append-only; they cannot be changed.")
        with transaction.atomic():
            _lock_audit_chain()
            last = type(self).objects.order_by("-id").values_list("entry_hash", flat=True).first()
            super().save(*args, **kwargs)
            # Re-read what the database stored (JSON and timestamp normalisation) before hashing.
            stored = type(self).objects.get(pk=self.pk)
            self.prev_hash = last or GENESIS_HASH
            self.entry_hash = stored.compute_hash(self.prev_hash)
            type(self).objects.filter(pk=self.pk).update(prev_hash=self.prev_hash, entry_hash=self.entry_hash)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit entries are append-only; they cannot be deleted.")


def _lock_audit_chain() -> None:
    """Serialise chain appends. SQLite already holds its write lock (IMMEDIATE transactions)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK_KEY])


class VaultBlob(models.Model):
    """One encrypted artifact in the vault (see apps.core.vault).

    The ciphertext lives on a storage backend under `storage_key`; this row holds its data key,
    sealed by the master key `kid` (AES-256-GCM envelope). Rotating master keys rewrites only
    `wrapped_key` and `kid`, never the blob.
    """

    storage_key = models.CharField(max_length=255, unique=True)
    wrapped_key = models.CharField(max_length=200)
    kid = models.CharField(max_length=32, db_index=True)
    purpose = models.CharField(max_length=64, blank=True, help_text="what the blob holds, e.g. catalog.onnx")
    plaintext_size = models.BigIntegerField()
    ciphertext_size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, help_text="hex digest of the plaintext")
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "vault blob"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.purpose or 'blob'} {self.sha256[:12]} ({self.plaintext_size} bytes, key {self.kid})"
