"""PII at rest: the offline store's files (partitions, training sets) that hold PII, sealed with the
vault's key ring, and the one reader that opens sealed and plain files alike.

A sealed file lies at its usual path, on local disk or in S3 (apps/features/filestore.py: the
object holds the ciphertext only), so paths, rows, retention and erasure work unchanged; it
holds the vault's blob format (apps/core/crypto.py: AES-256-GCM in authenticated chunks, a fresh
data key per file). The data key is kept wrapped in a `VaultBlob` row named `features-store:<path>`
(purpose `features.sealed`): `vault.keys_rotate` re-wraps it with every other blob and
`vault.keys_retire_unused` keeps its master key. The file's first bytes tell sealed (`PVLT`) from
plain Parquet (`PAR1`), so plain files written before a view had PII still read, until the next
write of the view (or `manage.py features_encrypt_pii`) seals them.

Files of data without PII stay plain Parquet: nothing here touches their bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from django.db import transaction

from apps.core import crypto, vault
from apps.core.errors import IntegrityFailure
from apps.core.models import VaultBlob
from apps.features import filestore

KEY_PREFIX = "features-store:"
PURPOSE = "features.sealed"
MAX_KEY = 255  # VaultBlob.storage_key


def key_name(rel: str) -> str:
    """The VaultBlob name holding the data key of the file at `rel` (relative to the store root)."""
    name = KEY_PREFIX + rel
    return name if len(name) <= MAX_KEY else f"{KEY_PREFIX}sha256:{hashlib.sha256(rel.encode()).hexdigest()}"


def with_keys(rels: list[str]) -> set[str]:
    """Which of the files at `rels` have a data key recorded (sealed, or being sealed): one query."""
    names = {key_name(rel): rel for rel in rels}
    found = VaultBlob.objects.filter(storage_key__in=list(names), purpose=PURPOSE).values_list("storage_key", flat=True)
    return {names[name] for name in found}


def is_sealed(rel: str) -> bool:
    """Whether the stored file at `rel` is sealed (its first bytes). FileNotFoundError when gone."""
    with filestore.open_input(rel) as handle:
        return handle.read(len(crypto.MAGIC)) == crypto.MAGIC


@dataclass(frozen=True)
class Written:
    """A table written by `write_table`: the staged file, the data key of a sealed one (None when
    plain) and the SHA-256 of its Parquet bytes (the plaintext, for a sealed file)."""

    staged: filestore.Staged
    key: crypto.EncryptResult | None
    sha256: str


def write_table(table: pa.Table, rel: str, *, seal: bool) -> Written:
    """Write `table` as Parquet to a new file at `rel` (filestore.stage: it counts once the caller
    commits `written.staged` with its row); sealed when `seal`.

    No database access: call `record(rel, written.key)` in the transaction that makes the file
    count, before `written.staged.commit()`. Nothing is left behind when this raises."""
    if not seal:
        staged, digest = filestore.stage(rel, lambda sink: _write_plain(table, sink))
        return Written(staged, None, digest)
    plain = _parquet_bytes(table)
    staged, key = filestore.stage(rel, lambda sink: _encrypt(plain, sink, rel), private=True)
    return Written(staged, key, key.sha256)


def _parquet_bytes(table: pa.Table) -> memoryview:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return memoryview(sink.getvalue())


def _encrypt(plain: memoryview, sink, rel: str) -> crypto.EncryptResult:
    return crypto.encrypt_file(plain, sink, vault.keyring(), vault.blob_context(key_name(rel)))


def _write_plain(table: pa.Table, sink) -> str:
    """Stream `table` as Parquet into `sink`; returns the SHA-256 of the bytes written."""
    hashing = _HashingSink(sink)
    pq.write_table(table, hashing, compression="zstd")
    return hashing.digest.hexdigest()


class _HashingSink(io.RawIOBase):
    """A write-only file that hashes what passes through to `sink` (pyarrow wants tell())."""

    def __init__(self, sink):
        super().__init__()
        self.sink, self.digest, self.written = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.sink.write(view)
        self.written += len(view)
        return len(view)

    def tell(self) -> int:
        return self.written


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
    with filestore.open_input(rel) as handle:
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


@contextlib.contextmanager
def _source(rel: str) -> Iterator[pa.NativeFile]:
    """What pyarrow reads: a plain file as it lies (random access: on S3, pyarrow fetches only the
    footer and the column chunks it needs), or a sealed file's plaintext, decrypted whole (the
    format authenticates chunk by chunk from the start) from the same open that found its marker."""
    with filestore.open_input(rel) as handle:
        if handle.read(len(crypto.MAGIC)) != crypto.MAGIC:
            handle.seek(0)
            yield handle
            return
        handle.seek(0)
        plain = _decrypted(handle, rel)
    yield pa.BufferReader(plain)


def read_schema(rel: str) -> pa.Schema:
    with _source(rel) as source:
        return pq.read_schema(source)


def read_table(rel: str, *, columns: list[str] | None = None, present_only: bool = False) -> pa.Table:
    """The table in the file at `rel`; with `present_only`, only those of `columns` the file has."""
    with _source(rel) as source:
        parquet = pq.ParquetFile(source)
        if columns is not None and present_only:
            present = set(parquet.schema_arrow.names)
            columns = [c for c in columns if c in present]
        return parquet.read(columns=columns)


def seal_in_place(rel: str) -> bool:
    """Seal the plain file at `rel` where it lies (same path, so its row is untouched). The key is
    recorded before the file is replaced: a crash in between leaves a plain file, which still reads
    (by its first bytes), and a rerun replaces the key. Inside a transaction the replacement waits
    for its commit (a rolled-back key must not leave a file only it opens). Returns False when it
    was already sealed."""
    if is_sealed(rel):
        return False
    with filestore.open_input(rel) as handle:
        plain = memoryview(handle.read())
    replacement, key = filestore.stage_replacement(rel, lambda sink: _encrypt(plain, sink, rel), private=True)
    try:
        record(rel, key)
    except BaseException:
        replacement.discard()
        raise
    transaction.on_commit(replacement.apply)
    return True
