"""The artifact vault: encryption at rest, integrity, rotation."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.core import vault
from apps.core.crypto import KeyRing
from apps.core.models import AuditEntry, VaultBlob

pytestmark = pytest.mark.django_db


def _path(blob: VaultBlob) -> Path:
    return Path(vault.storage().path(blob.storage_key))


def test_round_trip_and_ciphertext_hides_plaintext():
    data = os.urandom(3 << 20) + b"SECRET-MARKER" * 1000
    blob = vault.blob_store(io.BytesIO(data), purpose="test.bin")
    assert vault.blob_read(blob) == data
    stored = _path(blob).read_bytes()
    assert b"SECRET-MARKER" not in stored and data[:4096] not in stored
    assert blob.plaintext_size == len(data) and blob.ciphertext_size == len(stored)
    assert oct(_path(blob).stat().st_mode & 0o777) == "0o600"
    assert oct(vault.keyring_path().stat().st_mode & 0o777) == "0o600"
    vault.blob_verify(blob)


def test_flipped_byte_is_detected_never_wrong_bytes():
    data = os.urandom(2 << 20)
    blob = vault.blob_store(io.BytesIO(data), purpose="test.bin")
    path = _path(blob)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # inside the second chunk
    path.write_bytes(bytes(raw))
    received = bytearray()
    with pytest.raises(vault.IntegrityError, match="integrity check at chunk"):
        for chunk in vault.blob_chunks(blob):
            received += chunk
    assert bytes(received) == data[: len(received)]  # only verified bytes were ever released
    assert len(received) < len(data)


def test_truncated_and_missing_blobs_fail_clearly():
    blob = vault.blob_store(io.BytesIO(b"x" * 5000), purpose="test.bin")
    path = _path(blob)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(vault.IntegrityError):
        vault.blob_read(blob)
    path.unlink()
    with pytest.raises(vault.IntegrityError, match="missing"):
        vault.blob_read(blob)


def test_wrapped_key_is_bound_to_its_blob():
    one = vault.blob_store(io.BytesIO(b"first artifact"), purpose="test.bin")
    two = vault.blob_store(io.BytesIO(b"second artifact"), purpose="test.bin")
    one.wrapped_key = two.wrapped_key
    with pytest.raises(vault.IntegrityError, match="failed authentication"):
        vault.blob_read(one)


def test_keys_rotate_rewraps_without_rewriting_blobs(capsys):
    payloads = [os.urandom(n) for n in (0, 10, 1 << 20, (1 << 20) + 5)]
    blobs = [vault.blob_store(io.BytesIO(p), purpose="test.bin") for p in payloads]
    before = {b.pk: (_path(b).read_bytes(), b.wrapped_key, b.kid) for b in blobs}
    old_kid = vault.keyring().active_kid
    call_command("keys_rotate", "--kid", "rotated1")
    assert vault.keyring().active_kid == "rotated1" and old_kid in vault.keyring()
    for blob, payload in zip(blobs, payloads, strict=True):
        blob.refresh_from_db()
        ciphertext, wrapped, kid = before[blob.pk]
        assert blob.kid == "rotated1" and kid == old_kid and blob.wrapped_key != wrapped
        assert _path(blob).read_bytes() == ciphertext  # the blob was not rewritten
        assert vault.blob_read(blob) == payload
    assert "Re-wrapped 4 data key(s)" in capsys.readouterr().out
    # Retiring the old key now loses nothing.
    ring = vault.keyring().without(old_kid)
    vault._write_ring_file(vault.keyring_path(), ring)
    assert all(vault.blob_read(b) == p for b, p in zip(blobs, payloads, strict=True))
    entry = AuditEntry.objects.filter(additional_data__event="vault.keys_rotate").get()
    assert entry.additional_data["rewrapped"] == 4
    before = set(vault.keyring().kids)
    call_command("keys_rotate", "--kid", "rotated2", "--retire")
    # Retired: every old key no blob needs, except those audit entries are hashed under (kept for good).
    audit_kids = set(AuditEntry.objects.values_list("hash_kid", flat=True))
    assert "rotated1" in audit_kids and set(vault.keyring().kids) == {"rotated2"} | (before & audit_kids)
    for blob in blobs:
        blob.refresh_from_db()
    assert all(vault.blob_read(b) == p for b, p in zip(blobs, payloads, strict=True))


def test_configured_keyring_and_unknown_kid(settings):
    ring = KeyRing.generate("ops1")
    settings.VAULT_KEYRING = ring.to_spec()
    blob = vault.blob_store(io.BytesIO(b"payload"), purpose="test.bin")
    assert blob.kid == "ops1"
    # Operator adds a new key first, restarts, runs keys_rotate without generating.
    settings.VAULT_KEYRING = ring.with_key("ops2").to_spec()
    call_command("keys_rotate")
    blob.refresh_from_db()
    assert blob.kid == "ops2" and vault.blob_read(blob) == b"payload"
    settings.VAULT_KEYRING = KeyRing.generate("other").to_spec()
    with pytest.raises(vault.KeyRingError, match="not in the key ring"):
        vault.blob_read(blob)
    settings.VAULT_KEYRING = "not a spec"
    with pytest.raises(vault.KeyRingError, match="VAULT_KEYRING"):
        vault.keyring()


def test_default_storage_is_var_vault(settings):
    settings.VAULT_STORAGE = None  # the default: local files under VAULT_ROOT (var/vault)
    blob = vault.blob_store(io.BytesIO(b"local default"), purpose="test.bin")
    path = Path(settings.VAR_DIR) / "vault" / blob.storage_key
    assert path.exists() and vault.blob_read(blob) == b"local default"
    vault.blob_discard(blob.storage_key)
    assert not path.exists()
