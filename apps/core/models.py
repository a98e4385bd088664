"""Shared base models and the tamper-evident audit entry."""

from __future__ import annotations

from auditlog.models import AbstractLogEntry, LogEntryManager
from django.conf import settings
from django.db import connection, models, transaction
from django.dispatch import Signal

from apps.core import audit_keys
from apps.core.audit_keys import GENESIS_HASH

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


class AuditEntryQuerySet(models.QuerySet):
    def delete(self):
        # Bulk deletes (auditlog's flush, a careless shell) never reach Model.delete.
        raise PermissionError("Audit entries are never purged; see docs/SECURITY.md, 'Audit trail'.")

    delete.queryset_only = True


class AuditEntryManager(LogEntryManager.from_queryset(AuditEntryQuerySet)):
    pass


# Sent inside the appending transaction, once an entry's hash is stored: (entry, prev_id).
# apps.core.audit_chain listens to write a checkpoint every AUDIT_CHECKPOINT_EVERY entries.
audit_entry_chained = Signal()


class AuditEntry(AbstractLogEntry):
    """auditlog's entry plus a keyed hash chain: each entry stores the previous hash and its own.

    entry_hash = HMAC-SHA256(audit key, prev_hash || canonical content), the key derived from the
    master key `hash_kid` of the key ring (apps.core.audit_keys). Editing, deleting or inserting an
    entry anywhere breaks the chain from that point; checkpoints outside the table catch a cut
    head or a re-chain (apps.core.audit_chain, `audit_verify`).
    """

    # PROTECT: deleting a content type (remove_stale_contenttypes) must not cascade into the trail.
    content_type = models.ForeignKey(
        "contenttypes.ContentType", on_delete=models.PROTECT, related_name="+", verbose_name="content type"
    )
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    entry_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    hash_kid = models.CharField(max_length=32, blank=True, default="", help_text="master key the hash is keyed by")

    objects = AuditEntryManager()

    class Meta(AbstractLogEntry.Meta):
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        ordering = ["-id"]
        indexes = [models.Index(fields=["content_type", "object_pk"]), models.Index(fields=["actor", "-id"])]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit entries are append-only; they cannot be changed.")
        kid, key = audit_keys.chain_key()  # before the lock: a missing key ring fails without writing
        with transaction.atomic():
            _lock_audit_chain()
            last = type(self).objects.order_by("-id").values_list("id", "entry_hash").first()
            prev_id, prev_hash = last or (0, GENESIS_HASH)
            super().save(*args, **kwargs)
            # Hash what the database stored (JSON and timestamp normalisation), as the verifier reads it.
            row = type(self).objects.filter(pk=self.pk).values_list(*audit_keys.CANONICAL_FIELDS).get()
            self.prev_hash, self.hash_kid = prev_hash, kid
            self.entry_hash = audit_keys.entry_mac(key, prev_hash, row)
            type(self).objects.filter(pk=self.pk).update(
                prev_hash=self.prev_hash, entry_hash=self.entry_hash, hash_kid=kid
            )
            audit_entry_chained.send(sender=type(self), entry=self, prev_id=prev_id)

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
    region = models.CharField(
        max_length=64, default="default", help_text="whose storage holds the ciphertext (its S3 bucket)"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "vault blob"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.purpose or 'blob'} {self.sha256[:12]} ({self.plaintext_size} bytes, key {self.kid})"


class KeyRotation(models.Model):
    """A master-key rotation a platform admin started from the portal (apps/core/keyring_admin.py):
    queued, then run by a worker on the default queue, then succeeded or failed. `live` stays true
    until it ends; a partial unique index lets only one rotation be live at a time."""

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINAL = (State.SUCCEEDED, State.FAILED)

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    live = models.BooleanField(default=True, help_text="queued or running (one at a time)")
    retire = models.BooleanField(default=False, help_text="afterwards drop keys nothing needs any more")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    previous_kid = models.CharField(max_length=32, blank=True)
    active_kid = models.CharField(max_length=32, blank=True)
    done = models.IntegerField(default=0, help_text="data keys re-wrapped or failed so far")
    total = models.IntegerField(default=0, help_text="data keys to re-wrap")
    report = models.JSONField(default=dict, blank=True, help_text="the vault's report (no key material)")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "key rotation"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["live"], condition=models.Q(live=True), name="core_keyrotation_one_live")
        ]

    def __str__(self) -> str:
        return f"key rotation {self.pk}"

    @property
    def percent(self) -> int:
        if self.state == self.State.SUCCEEDED:
            return 100
        return round(100 * self.done / self.total) if self.total else 0
