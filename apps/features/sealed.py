"""PII at rest: the offline store's files (partitions, training sets) that hold PII, sealed with the
vault's key ring, and the one reader that opens sealed and plain files alike.

A sealed file lies at its usual path (so paths, rows, retention and erasure work unchanged) and
holds the vault's blob format (apps/core/crypto.py: AES-256-GCM in authenticated chunks, a fresh
data key per file). The data key is kept wrapped in a `VaultBlob` row named `features-store:<path>`
(purpose `features.sealed`): `vault.keys_rotate` re-wraps it with every other blob and
`vault.keys_retire_unused` keeps its master key. The file's first bytes tell sealed (`PVLT`) from
plain Parquet (`PAR1`), so plain files written before a view had PII still read, until the next
write of the view (or `manage.py features_encrypt_pii`) seals them.

Files of data without PII stay plain Parquet: nothing here touches their bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db import transaction

from apps.core import crypto, vault
from apps.core.errors import IntegrityFailure
from apps.core.models import VaultBlob

KEY_PREFIX = "features-store:"
PURPOSE = "features.sealed"
MAX_KEY = 255  # VaultBlob.storage_key


def _root() -> Path:
    return Path(settings.FEATURE_STORE_ROOT)


def key_name(rel: str) -> str:
    """The VaultBlob name holding the data key of the file at `rel` (relative to the store root)."""
    name = KEY_PREFIX + rel
    return name if len(name) <= MAX_KEY else f"{KEY_PREFIX}sha256:{hashlib.sha256(rel.encode()).hexdigest()}"


def with_keys(rels: list[str]) -> set[str]:
    """Which of the files at `rels` have a data key recorded (sealed, or being sealed): one query."""
    names = {key_name(rel): rel for rel in rels}
    found = VaultBlob.objects.filter(storage_key__in=list(names), purpose=PURPOSE).values_list("storage_key", flat=True)
    return {names[name] for name in found}


def is_sealed(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(crypto.MAGIC)) == crypto.MAGIC


def write_table(table: pa.Table, tmp: Path, *, rel: str, seal: bool) -> crypto.EncryptResult | None:
    """Write `table` as Parquet to `tmp` (renamed to `rel` by the caller); sealed when `seal`.

    No database access: call `record(rel, result)` with the returned result in the transaction
    that makes the file count, before it is renamed into place."""
    if not seal:
        pq.write_table(table, tmp, compression="zstd")
        return None
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    plain = memoryview(sink.getvalue())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        return crypto.encrypt_file(plain, out, vault.keyring(), vault.blob_context(key_name(rel)))


def record(rel: str, result: crypto.EncryptResult | None) -> None:
    """Keep the wrapped data key of the sealed file `rel` (nothing for a plain file)."""
    if result is None:
        return
    VaultBlob.objects.update_or_create(
        storage_key=key_name(rel),
        defaults={
            "wrapped_key": result.wrapped_key.to_string(),
            "kid": result.wrapped_key.kid,
            "purpose": PURPOSE,
            "plaintext_size": result.plaintext_size,
            "ciphertext_size": result.ciphertext_size,
            "sha256": result.sha256,
        },
    )


def forget(rels: list[str]) -> None:
    """Drop the data keys of files that are gone (a no-op for plain files)."""
    names = [key_name(rel) for rel in rels]
    if names:
        VaultBlob.objects.filter(storage_key__in=names, purpose=PURPOSE).delete()


def plaintext(rel: str) -> bytes:
    """The Parquet bytes of the file at `rel`, decrypted and authenticated when sealed.
    `IntegrityFailure` when a sealed file was changed or its key is missing."""
    with open(_root() / rel, "rb") as handle:
        if handle.read(len(crypto.MAGIC)) != crypto.MAGIC:
            handle.seek(0)
            return handle.read()
        handle.seek(0)
        return _decrypted(handle, rel)


def _decrypted(handle, rel: str) -> bytes:
    blob = VaultBlob.objects.filter(storage_key=key_name(rel)).only("wrapped_key").first()
    if blob is None:
        raise IntegrityFailure(f"The encryption key of {rel} is missing; tell a platform admin.")
    out = io.BytesIO()
    crypto.decrypt_file(
        handle, out, crypto.WrappedKey.from_string(blob.wrapped_key), vault.keyring(), vault.blob_context(key_name(rel))
    )
    return out.getvalue()


def _source(rel: str):
    """What pyarrow reads: a plain file's path (pyarrow opens it), or a sealed file's plaintext,
    decrypted from the same open that found its marker."""
    path = _root() / rel
    with open(path, "rb") as handle:
        if handle.read(len(crypto.MAGIC)) != crypto.MAGIC:
            return path
        handle.seek(0)
        return pa.BufferReader(_decrypted(handle, rel))


def read_schema(rel: str) -> pa.Schema:
    return pq.read_schema(_source(rel))


def read_table(rel: str, *, columns: list[str] | None = None, present_only: bool = False) -> pa.Table:
    """The table in the file at `rel`; with `present_only`, only those of `columns` the file has."""
    source = _source(rel)
    if columns is not None and present_only:
        present = set(pq.read_schema(source).names)
        columns = [c for c in columns if c in present]
        if isinstance(source, pa.BufferReader):
            source.seek(0)
    return pq.read_table(source, columns=columns)


def seal_in_place(rel: str) -> bool:
    """Seal the plain file at `rel` where it lies (same path, so its row is untouched). The key is
    recorded before the rename: a crash in between leaves a plain file, which still reads (by its
    first bytes), and a rerun replaces the key. Inside a transaction the rename waits for its commit
    (a rolled-back key must not leave a file only it opens). Returns False when it was already sealed."""
    path = _root() / rel
    if is_sealed(path):
        return False
    table = pq.read_table(path)
    tmp = path.parent / f".tmp-seal-{path.name}"
    try:
        record(rel, write_table(table, tmp, rel=rel, seal=True))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    transaction.on_commit(lambda: os.replace(tmp, path))
    return True
