"""The artifact vault: Django glue around apps.core.crypto.

* Key ring: ``settings.VAULT_KEYRING`` (a ``"kid:base64key,..."`` spec; the first key is active),
  which the settings read from the ``VAULT_KEYRING`` environment variable or ``VAULT_KEYRING_FILE``.
  Without it (embedded mode) a ring is generated once into ``var/vault-keyring`` (mode 0600) and
  re-read whenever that file changes, so a rotation is seen by running processes.
* Storage: a local folder (``VAULT_ROOT``, ``var/vault/``) by default; S3-compatible object storage
  when ``VAULT_S3_BUCKET`` is set (apps.core.objectstore: streamed multipart writes, ranged reads,
  a bucket per region in ``VAULT_S3_BUCKETS``; a blob's row records its region so reads find it);
  or any Django storage backend in ``settings.VAULT_STORAGE`` (tests), which overrides both.
* Every blob has its own data key, bound to its storage key (the AES-GCM associated data), so a
  wrapped key copied onto another row does not decrypt anything.

Services: ``blob_store`` (encrypt while writing), ``blob_chunks`` (decrypt while reading),
``blob_delete``, ``keys_rotate`` and ``streaming_response`` for downloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage
from django.db import connection, transaction
from django.db.models import Count
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.core import crypto, objectstore, residency, safefiles
from apps.core.crypto import IntegrityError, KeyRing, KeyRingError, VaultError, WrappedKey  # noqa: F401
from apps.core.errors import ResidencyError
from apps.core.models import AuditEntry, VaultBlob

log = logging.getLogger(__name__)
KEYRING_FILENAME = "vault-keyring"
_lock = threading.Lock()
_ring_cache: dict[str, object] = {}
_storage_cache: dict[str, Storage] = {}


# --- key ring -------------------------------------------------------------------------------


def keyring_path() -> Path:
    return Path(settings.VAR_DIR) / KEYRING_FILENAME


def keyring_is_embedded() -> bool:
    """True when the ring lives in var/ (generated here) rather than in the configuration."""
    return not settings.VAULT_KEYRING


def keyring() -> KeyRing:
    """The master key ring. Configured rings are parsed once; the embedded file is re-read on change."""
    spec = settings.VAULT_KEYRING
    if spec:
        cached = _ring_cache.get("configured")
        if cached is None or cached[0] != spec:
            try:
                ring = KeyRing.from_spec(spec)
            except KeyRingError as exc:
                raise KeyRingError(f"VAULT_KEYRING is not usable: {exc}") from None
            _ring_cache["configured"] = cached = (spec, ring)
        return cached[1]
    path = keyring_path()
    with _lock:
        if not path.exists():
            _write_ring_file(path, KeyRing.generate())
        stamp = path.stat().st_mtime_ns
        cached = _ring_cache.get("file")
        if cached is None or cached[0] != stamp:
            try:
                ring = KeyRing.from_spec(path.read_text())
            except KeyRingError as exc:
                raise KeyRingError(f"{path} is not a usable key ring: {exc}") from None
            _ring_cache["file"] = cached = (stamp, ring)
        return cached[1]


def _write_ring_file(path: Path, ring: KeyRing) -> None:
    """Atomically replace the embedded key ring file, readable only by this user."""
    safefiles.write_private(path, (ring.to_spec() + "\n").encode(), prefix=".vault-keyring-")


# --- storage --------------------------------------------------------------------------------


def storage() -> Storage:
    """The Django storage of local blobs: VAULT_STORAGE, else the VAULT_ROOT folder. Blobs on S3
    (`s3_enabled()`) never go through it."""
    config = settings.VAULT_STORAGE or {}
    location = Path(settings.VAULT_ROOT)
    key = repr(sorted(config.items())) if config else f"local:{location}"
    found = _storage_cache.get(key)
    if found is None:
        if config:
            found = import_string(config["BACKEND"])(**config.get("OPTIONS", {}))
        else:
            found = FileSystemStorage(location=location, file_permissions_mode=0o600, directory_permissions_mode=0o700)
        _storage_cache[key] = found
    return found


def blob_context(storage_key: str) -> bytes:
    """The associated data a blob's data key is wrapped with (also for keys kept for files outside
    the vault, such as sealed feature files, so that keys_rotate re-wraps them alike)."""
    return b"vault-blob:" + storage_key.encode()


def s3_enabled() -> bool:
    """True when blobs go to S3 (VAULT_S3_BUCKET set and no VAULT_STORAGE override)."""
    return bool(settings.VAULT_S3_BUCKET) and not settings.VAULT_STORAGE


def _s3_bucket(region: str) -> str:
    return objectstore.bucket_for(settings.VAULT_S3_BUCKETS, region)


@dataclass(frozen=True, slots=True)
class WriteResult(crypto.EncryptResult):
    """What `blob_write` wrote, plus the region whose storage holds it (for `blob_record`)."""

    region: str = residency.UNPINNED


def _local_path(store: Storage, name: str) -> Path | None:
    if isinstance(store, FileSystemStorage):
        return Path(store.path(name))
    return None


# --- services -------------------------------------------------------------------------------


def blob_store(src: BinaryIO, *, purpose: str, region: str | None = None) -> VaultBlob:
    """Encrypt `src` onto the storage backend while reading it once; create and return the row.

    Call inside the caller's transaction. If the row is not committed, call `blob_discard` with
    the returned blob's storage key and region so that no ciphertext is left behind.
    """
    name, result = blob_write(src, purpose=purpose, region=region)
    try:
        return blob_record(name, result, purpose=purpose)
    except BaseException:
        blob_discard(name, region=result.region)
        raise


def blob_write(src: BinaryIO, *, purpose: str, region: str | None = None) -> tuple[str, WriteResult]:
    """Encrypt `src` into a new blob on the storage backend; no database access.

    Lets callers do the slow part (reading, hashing, encrypting a large upload) before they open a
    transaction, then `blob_record` the result inside it. If that fails, `blob_discard(name,
    region=result.region)`.
    `region`: whose storage holds the blob (default: this process's region, PORTAL_REGION); on S3
    a region without a bucket of its own is refused (ResidencyError), never stored elsewhere.
    """
    ring = keyring()
    region = region or residency.process_region()
    prefix = (purpose.split(".")[0] or "blob")[:32]
    name = f"{prefix}/{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}.pvlt"
    if s3_enabled():
        # Encrypted straight into the upload: one part in memory, no temporary file.
        with objectstore.MultipartWriter(objectstore.client(), _s3_bucket(region), name) as out:
            result = crypto.encrypt_file(src, out, ring, blob_context(name))
        return name, _with_region(result, region)
    store = storage()
    local = _local_path(store, name)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=local.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                result = crypto.encrypt_file(src, out, ring, blob_context(name))
            os.replace(tmp, local)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    else:
        with tempfile.TemporaryFile() as spool:
            result = crypto.encrypt_file(src, spool, ring, blob_context(name))
            spool.seek(0)
            saved = store.save(name, File(spool))
        if saved != name:
            store.delete(saved)
            raise VaultError(f"storage renamed {name!r} to {saved!r}; configure it to keep names (file_overwrite)")
    return name, _with_region(result, region)


def _with_region(result: crypto.EncryptResult, region: str) -> WriteResult:
    return WriteResult(result.wrapped_key, result.plaintext_size, result.sha256, result.ciphertext_size, region)


def blob_record(name: str, result: crypto.EncryptResult, *, purpose: str) -> VaultBlob:
    """The database row for a blob written by `blob_write` (with the region it was written to)."""
    region = result.region if isinstance(result, WriteResult) else residency.process_region()
    return VaultBlob.objects.create(
        region=region,
        storage_key=name,
        wrapped_key=result.wrapped_key.to_string(),
        kid=result.wrapped_key.kid,
        purpose=purpose[:64],
        plaintext_size=result.plaintext_size,
        ciphertext_size=result.ciphertext_size,
        sha256=result.sha256,
    )


def blob_discard(storage_key: str, *, region: str | None = None) -> None:
    """Remove a blob's ciphertext (no error if it is already gone). `region`: the one it was
    written to (`WriteResult.region`, `VaultBlob.region`); default this process's, as blob_write."""
    if s3_enabled():
        try:
            bucket = _s3_bucket(region or residency.process_region())
            objectstore.delete(objectstore.client(), bucket, storage_key)
        except (VaultError, ResidencyError) as exc:  # called while handling another error
            log.warning("vault blob %s was left in S3: %s", storage_key, exc)
        return
    with contextlib.suppress(FileNotFoundError, OSError):
        storage().delete(storage_key)


def blob_delete(blob: VaultBlob) -> None:
    """Delete the row now and the ciphertext once the transaction commits."""
    name, region = blob.storage_key, blob.region
    blob.delete()
    transaction.on_commit(lambda: blob_discard(name, region=region))


def blob_delete_superseded(pk: int, storage_key: str) -> None:
    """`blob_delete` for a blob its only owner just stopped pointing at (training checkpoints).

    One DELETE instead of the ORM collector's reference queries; the database's foreign keys
    still refuse (at commit) if anything else references the row.
    """
    table = VaultBlob._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s RETURNING region", [pk])  # noqa: S608  table name from the model, pk is a parameter
        row = cursor.fetchone()
    region = row[0] if row else None
    transaction.on_commit(lambda: blob_discard(storage_key, region=region))


def _open(blob: VaultBlob) -> tuple[BinaryIO, WrappedKey]:
    wrapped = WrappedKey.from_string(blob.wrapped_key)
    if s3_enabled():
        return objectstore.RangedReader(objectstore.client(), _s3_bucket(blob.region), blob.storage_key), wrapped
    try:
        handle = storage().open(blob.storage_key, "rb")
    except FileNotFoundError:
        raise IntegrityError(f"artifact blob {blob.storage_key} is missing from the vault storage") from None
    return handle, wrapped


def blob_chunks(blob: VaultBlob) -> Iterator[bytes]:
    """Authenticated plaintext, chunk by chunk (about 1 MiB each); raises IntegrityError on tampering.

    The key is unwrapped and the header checked before this returns, so a bad key or a corrupt
    header fails before a response starts. Truncation or a flipped byte later in the blob fails
    at that chunk: the consumer must discard what it received (a download is then cut short).
    """
    handle, wrapped = _open(blob)
    try:
        chunks = crypto.decrypt_stream(handle, wrapped, _ring_for(wrapped), blob_context(blob.storage_key))
    except BaseException:
        handle.close()
        raise

    def generate() -> Iterator[bytes]:
        with handle:
            yield from chunks

    return generate()


def blob_read(blob: VaultBlob, *, max_bytes: int = 256 << 20) -> bytes:
    """The whole plaintext (for small artifacts: inference sessions, tests)."""
    if blob.plaintext_size > max_bytes:
        raise VaultError(f"blob is {blob.plaintext_size} bytes; stream it with blob_chunks instead")
    return b"".join(blob_chunks(blob))


def blob_verify(blob: VaultBlob) -> None:
    """Decrypt the whole blob and check size and digest; raises IntegrityError on any mismatch."""
    digest, size = hashlib.sha256(), 0
    for chunk in blob_chunks(blob):
        digest.update(chunk)
        size += len(chunk)
    if size != blob.plaintext_size or digest.hexdigest() != blob.sha256:
        raise IntegrityError(f"artifact blob {blob.storage_key} does not match its recorded size and digest")


def _ring_for(wrapped: WrappedKey) -> KeyRing:
    ring = keyring()
    if wrapped.kid not in ring:
        raise KeyRingError(
            f"the blob is sealed under master key {wrapped.kid!r}, which is not in the key ring "
            f"({', '.join(ring.kids)}); restore that key or check VAULT_KEYRING"
        )
    return ring


def keys_rotate(
    *,
    new_kid: str | None = None,
    generate: bool | None = None,
    batch: int = 500,
    actor=None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Re-wrap every data key under the active master key; blobs are not rewritten.

    Embedded mode (ring in var/): a new master key is generated first, made active and saved
    before anything is re-wrapped. Configured mode: put the new key first in VAULT_KEYRING,
    restart the processes, then run this to move every blob onto it. `actor`: who is audited as
    rotating (the system user when none: commands); `progress(done, total)` after every batch.
    """
    from apps.core.audit import audit_event, system_user

    if generate is None:
        generate = keyring_is_embedded()
    ring = keyring()
    previous = ring.active_kid
    if generate:
        if not keyring_is_embedded():
            raise KeyRingError(
                "the key ring comes from VAULT_KEYRING: add the new key as its first entry and restart "
                "the processes, then run keys_rotate again without --generate"
            )
        with _lock:
            ring = ring.with_key(new_kid or f"k{uuid.uuid4().hex[:8]}")
            _write_ring_file(keyring_path(), ring)
            _ring_cache.pop("file", None)
        ring = keyring()
    active = ring.active_kid
    rewrapped = failed = 0
    errors: list[str] = []
    last_id = 0
    total = 0
    if progress:
        total = VaultBlob.objects.exclude(kid=active).count()
        progress(0, total)
    while True:
        rows = list(
            VaultBlob.objects.filter(pk__gt=last_id)
            .exclude(kid=active)
            .order_by("pk")
            .values_list("pk", "storage_key", "wrapped_key")[:batch]
        )
        if not rows:
            break
        for pk, name, text in rows:
            last_id = pk
            try:
                fresh = crypto.rewrap(WrappedKey.from_string(text), ring, blob_context(name))
            except VaultError as exc:
                failed += 1
                errors.append(f"blob {pk}: {exc}")
                continue
            # Only replace the record we read: a concurrent rotation wins instead of being undone.
            rewrapped += VaultBlob.objects.filter(pk=pk, wrapped_key=text).update(
                wrapped_key=fresh.to_string(), kid=fresh.kid, rewrapped_at=timezone.now()
            )
        if progress:
            progress(rewrapped + failed, max(total, rewrapped + failed))
    report = {
        "previous_kid": previous,
        "active_kid": active,
        "generated": bool(generate),
        "rewrapped": rewrapped,
        "failed": failed,
        "errors": errors[:20],
        "remaining_by_kid": dict(
            VaultBlob.objects.exclude(kid=active).values_list("kid").annotate(n=Count("id")).order_by()
        ),
    }
    audit_event(
        actor=actor or system_user(), event="vault.keys_rotate", data={k: v for k, v in report.items() if k != "errors"}
    )
    return report


def keys_retire_unused() -> list[str]:
    """Embedded mode: drop master keys that no blob is sealed under any more (never the active one)."""
    if not keyring_is_embedded():
        raise KeyRingError("the key ring comes from VAULT_KEYRING: remove retired keys there")
    with _lock:
        ring = KeyRing.from_spec(keyring_path().read_text())
        used = set(VaultBlob.objects.values_list("kid", flat=True).distinct())
        # Audit entries are verified under the key they were hashed with, forever (never re-chained).
        used |= set(AuditEntry.objects.order_by().values_list("hash_kid", flat=True).distinct())
        retired = [kid for kid in ring.kids if kid != ring.active_kid and kid not in used]
        for kid in retired:
            ring = ring.without(kid)
        if retired:
            _write_ring_file(keyring_path(), ring)
            _ring_cache.pop("file", None)
    return retired


# --- downloads ------------------------------------------------------------------------------


def _is_asgi(request) -> bool:
    raw = getattr(request, "_request", request)
    return "asgi" in type(raw).__module__ or hasattr(raw, "scope")


async def _aiter_in_thread(chunks: Iterator[bytes], prefetch: int = 2) -> AsyncIterator[bytes]:
    """Pull a blocking iterator in a worker thread, `prefetch` chunks ahead of the socket.

    Reading and decrypting the next chunk overlaps with sending the current one, and the event
    loop never blocks on disk or crypto.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=prefetch)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            item: object = done
        except BaseException as exc:  # handed to the consumer, raised there
            item = exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if not stop.is_set():
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    worker = loop.run_in_executor(None, produce)
    try:
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting on a full queue
            queue.get_nowait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(worker), timeout=5)


def streaming_response(
    chunks: Iterator[bytes], *, request, size: int | None, filename: str, content_type: str = "application/octet-stream"
) -> StreamingHttpResponse:
    """A download that never holds the whole file: async under ASGI, plain iteration under WSGI."""
    body = _aiter_in_thread(chunks) if _is_asgi(request) else chunks
    response = StreamingHttpResponse(body, content_type=content_type)
    if size is not None:
        response["Content-Length"] = str(size)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
