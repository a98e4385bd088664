"""S3-compatible object storage (AWS S3, MinIO, Ceph RGW) through boto3, for the artifact vault.

The one place that builds boto3 clients from the S3_* settings (`client`), picks a region's bucket
(`bucket_for`), writes an object as a stream (`MultipartWriter`: one part in memory at a time) and
reads one back as a seekable file (`RangedReader`: ranged GETs, nothing buffered beyond a read).
It knows nothing of encryption: apps/core/vault.py hands it ciphertext and reads ciphertext back.

Failures come out as the vault's errors: a missing object is `IntegrityError` ("missing from the
vault storage"); access denied, a missing bucket, bad credentials or an unreachable endpoint are
`VaultError`s that say which setting to check.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)
from django.conf import settings

from apps.core.crypto import IntegrityError, VaultError
from apps.core.errors import ResidencyError
from portal.env import ConfigError

log = logging.getLogger(__name__)

UNPINNED = "default"  # apps.core.residency.UNPINNED: data not pinned to any region
MIB = 1 << 20
MAX_PARTS = 10_000  # S3's limit on parts per multipart upload
READ_BLOCK = 64 * MIB  # bytes per ranged GET; streamed, so this bounds requests, not memory
RETRY_ATTEMPTS = 5  # botocore "standard" retries: throttling, 5xx and connection errors
STREAM_RETRIES = 2  # re-opens of a ranged GET whose connection broke mid-body
# Which environment variables fill each bucket map (portal/settings/), for error messages.
_BUCKET_ENV = {
    "VAULT_S3_BUCKETS": ("VAULT_S3_BUCKET", "VAULT_S3_REGION_BUCKETS"),
    "FEATURE_STORE_S3_BUCKETS": ("FEATURE_STORE_S3_BUCKET", "FEATURE_STORE_S3_REGION_BUCKETS"),
}
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED_CODES = frozenset(
    {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
)
T = TypeVar("T")
_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


# --- clients and buckets --------------------------------------------------------------------


def client():
    """The boto3 S3 client for the current S3_* settings: one per process and configuration
    (clients are thread-safe), so a test or process that changes the settings gets a new one."""
    return built_once(_clients, _clients_lock, settings_key(), _build_client)


def built_once(cache: dict, lock: threading.Lock, key: tuple, build: Callable[[], T]) -> T:
    """`cache[key]`, built by `build()` on first use, once even when threads race (S3 clients
    here, pyarrow's S3 filesystems in apps/features/filestore.py)."""
    found = cache.get(key)
    if found is None:
        with lock:
            found = cache.get(key)
            if found is None:
                found = cache[key] = build()
    return found


def settings_key() -> tuple:
    """The S3_* settings as a cache key for clients built from them (here and pyarrow's filesystem
    in apps/features/filestore.py). The secret only as a digest: a key must not hold it in clear."""
    secret = hashlib.sha256((settings.S3_SECRET_ACCESS_KEY or "").encode()).hexdigest()
    return (
        settings.S3_ENDPOINT_URL or "",
        settings.S3_REGION or "",
        settings.S3_ACCESS_KEY_ID or "",
        secret,
        settings.S3_CA_BUNDLE or "",
        settings.S3_ADDRESSING_STYLE,
    )


def credentials() -> tuple[str | None, str | None]:
    """(access key id, secret) from the settings, both or neither (None: the default chain)."""
    key_id, secret = settings.S3_ACCESS_KEY_ID or None, settings.S3_SECRET_ACCESS_KEY or None
    if bool(key_id) != bool(secret):
        raise ConfigError(
            "Set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (the default chain: "
            "environment, shared config, instance or pod role)."
        )
    return key_id, secret


def _build_client():
    # boto3 takes ~160 ms to import: processes whose vault is a local folder never pay for it.
    import boto3
    from botocore.config import Config

    key_id, secret = credentials()
    config = Config(
        region_name=settings.S3_REGION or None,
        retries={"max_attempts": RETRY_ATTEMPTS, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        s3={"addressing_style": settings.S3_ADDRESSING_STYLE},
        # boto3 >= 1.36 sends CRC checksums by default, which several S3-compatible servers (older
        # MinIO, Ceph RGW) refuse; the vault's AES-GCM tags authenticate every byte anyway.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # A session per client: boto3 sessions are not thread-safe, clients are.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.S3_ENDPOINT_URL or None,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        verify=settings.S3_CA_BUNDLE or True,
        config=config,
    )


def bucket_for(buckets: dict[str, str], region: str, *, env_var: str | None = None) -> str:
    """The bucket that holds data of `region` ("" or None: unpinned) in `buckets` (a settings map
    such as VAULT_S3_BUCKETS). Data pinned to a region without a bucket of its own is refused
    (ResidencyError): it never falls back to the default bucket. `env_var` names the variable to
    set in the message (found from the settings map when not given)."""
    region = region or UNPINNED
    bucket = buckets.get(region)
    if bucket:
        return bucket
    default_var, regions_var = _bucket_env(buckets)
    if region == UNPINNED:
        raise ConfigError(f"No S3 bucket for unpinned data: set {env_var or default_var}.")
    raise ResidencyError(
        f"Region {region!r} has no S3 bucket of its own: add {region}=<bucket> to {env_var or regions_var}. "
        "Data pinned to a region is never stored in another region's bucket."
    )


def _bucket_env(buckets: dict[str, str]) -> tuple[str, str]:
    for setting in _BUCKET_ENV:
        if getattr(settings, setting) is buckets:
            return _BUCKET_ENV[setting]
    for setting in _BUCKET_ENV:
        if getattr(settings, setting) == buckets:
            return _BUCKET_ENV[setting]
    return "the *_S3_BUCKET variable", "the *_S3_REGION_BUCKETS variable"


# --- errors ---------------------------------------------------------------------------------


@contextlib.contextmanager
def translated(bucket: str, key: str | None = None) -> Iterator[None]:
    """Re-raise boto3 failures inside the block as the vault's errors (see the module docstring)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise storage_error(exc, bucket, key) from exc


def storage_error(exc: Exception, bucket: str, key: str | None = None) -> VaultError:
    """The vault error for a boto3 failure on `bucket` (and object `key`)."""
    where = settings.S3_ENDPOINT_URL or f"AWS S3 ({settings.S3_REGION})"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), error.get("Message", "")
        if code in _MISSING_CODES and key is not None:
            return IntegrityError(f"artifact blob {key} is missing from the vault storage (bucket {bucket})")
        if code == "NoSuchBucket" or code in _MISSING_CODES:
            return VaultError(
                f"S3 bucket {bucket!r} does not exist at {where}: create it, or check VAULT_S3_BUCKET, "
                "VAULT_S3_REGION_BUCKETS and S3_ENDPOINT_URL."
            )
        if code in _DENIED_CODES:
            return VaultError(
                f"S3 at {where} refused access to bucket {bucket!r} ({code}): check S3_ACCESS_KEY_ID and "
                "S3_SECRET_ACCESS_KEY (or the instance role), and that the bucket policy allows GetObject, "
                "PutObject, DeleteObject, ListBucket and multipart uploads."
            )
        if code in ("PreconditionFailed", "412"):
            return IntegrityError(f"artifact blob {key} was replaced in the vault storage while it was being read")
        return VaultError(f"S3 request on bucket {bucket!r} at {where} failed: {code} {message}".strip())
    if isinstance(exc, NoCredentialsError):
        return VaultError(
            "No S3 credentials: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or give the process a role."
        )
    if isinstance(exc, SSLError):
        return VaultError(f"TLS verification of {where} failed: point S3_CA_BUNDLE at the CA that signed it.")
    if isinstance(exc, EndpointConnectionError):
        return VaultError(f"Cannot reach S3 at {where}: check S3_ENDPOINT_URL and the network.")
    return VaultError(f"S3 request on bucket {bucket!r} at {where} failed: {exc}")


# --- small helpers --------------------------------------------------------------------------


def head(s3, bucket: str, key: str) -> dict:
    """The object's metadata (ContentLength, ETag, ...); IntegrityError when it does not exist."""
    with translated(bucket, key):
        return s3.head_object(Bucket=bucket, Key=key)


def exists(s3, bucket: str, key: str) -> bool:
    try:
        head(s3, bucket, key)
    except IntegrityError:
        return False
    return True


def delete(s3, bucket: str, key: str) -> None:
    """Delete the object; no error when it is already gone (S3 deletes are idempotent)."""
    with translated(bucket):
        s3.delete_object(Bucket=bucket, Key=key)


def list_keys(s3, bucket: str, prefix: str = "") -> Iterator[str]:
    """Every key under `prefix`, in S3's (lexicographic) order, a page of 1000 at a time."""
    with translated(bucket):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                yield item["Key"]


# --- streaming writes -----------------------------------------------------------------------


class MultipartWriter:
    """A write-only file that streams into object `key`: one part (S3_MULTIPART_CHUNK_MB) is
    buffered, uploaded with upload_part, and the upload completed on `close()`. An object smaller
    than one part goes up with a single put_object. Any failure, or leaving a `with` block on an
    exception, aborts the multipart upload so nothing (no object, no open upload) is left.

    Not an io.IOBase on purpose: IOBase closes on garbage collection, which here would publish a
    half-written object instead of aborting it.
    """

    def __init__(self, s3, bucket: str, key: str, *, part_size: int | None = None) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.part_size = part_size or settings.S3_MULTIPART_CHUNK_MB * MIB
        self.size = 0  # bytes written so far
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._state = "open"  # then "closed" or "aborted"

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._state != "open":
            raise ValueError(f"write to a {self._state} S3 upload of {self.key}")
        with memoryview(data) as view:
            size = view.nbytes
            try:
                self._buffer += view
                if len(self._buffer) >= self.part_size:
                    # Hand the whole buffer over (a part may exceed part_size by one write): no copy.
                    part, self._buffer = self._buffer, bytearray()
                    self._upload_part(part)
            except BaseException:
                self.abort()
                raise
        self.size += size
        return size

    def _upload_part(self, part: bytearray) -> None:
        if self._upload_id is None:
            with translated(self.bucket, None):
                self._upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise VaultError(
                f"{self.key} needs more than {MAX_PARTS} parts of {self.part_size // MIB} MiB: raise S3_MULTIPART_CHUNK_MB"
            )
        with translated(self.bucket, None):
            answer = self.s3.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=part
            )
        self._parts.append({"ETag": answer["ETag"], "PartNumber": number})

    def close(self) -> None:
        """Upload what is buffered and publish the object (complete, or put it whole when small)."""
        if self._state != "open":
            return
        try:
            with translated(self.bucket, None):
                if self._upload_id is None:
                    self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=self._buffer)
                else:
                    if self._buffer:
                        self._upload_part(self._buffer)
                    self.s3.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts},
                    )
        except BaseException:
            self.abort()
            raise
        self._buffer = bytearray()
        self._state = "closed"

    def abort(self) -> None:
        """Drop the upload and every part sent; nothing is published. Safe to call twice."""
        if self._state != "open":
            return
        self._state, self._buffer = "aborted", bytearray()
        if self._upload_id is not None:
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            except (ClientError, BotoCoreError) as exc:
                # A bucket lifecycle rule (AbortIncompleteMultipartUpload) is the backstop for this.
                log.warning("could not abort the S3 multipart upload of %s in %s: %s", self.key, self.bucket, exc)

    def __enter__(self) -> MultipartWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --- ranged reads ---------------------------------------------------------------------------


class RangedReader(io.RawIOBase):
    """A seekable, read-only file over object `key`: each read streams from a `Range: bytes=a-b`
    GET of at most `block_size` bytes, so memory stays at what the caller asks for. Every GET is
    pinned to the ETag seen at open, so an object replaced mid-read fails instead of mixing two
    versions. Size and ETag come from head_object (IntegrityError when the object is missing)."""

    def __init__(self, s3, bucket: str, key: str, *, block_size: int = READ_BLOCK) -> None:
        super().__init__()
        self.s3, self.bucket, self.key, self.block_size = s3, bucket, key, block_size
        meta = head(s3, bucket, key)
        self.size, self._etag = int(meta["ContentLength"]), meta["ETag"]
        self._pos = 0
        self._body = None
        self._body_end = 0  # end (exclusive) of the range the open body streams

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._drop_body()
            self._pos = target
        return target

    def readinto(self, buffer) -> int:
        """Fill `buffer` (across blocks) up to the end of the object; 0 at the end."""
        view = memoryview(buffer).cast("B")
        want = min(len(view), self.size - self._pos)
        filled = 0
        while filled < want:
            data = self._read_retrying(want - filled)
            if not data:
                raise IntegrityError(f"artifact blob {self.key} is shorter in the vault storage than its recorded size")
            view[filled : filled + len(data)] = data
            filled += len(data)
            self._pos += len(data)
        return filled

    def _read_retrying(self, want: int) -> bytes:
        for attempt in range(STREAM_RETRIES):
            try:
                return self._read(want)
            except (ReadTimeoutError, ResponseStreamingError, IncompleteReadError):
                self._drop_body()  # the connection broke mid-body: re-open from the same offset
                log.info("S3 read of %s broke at byte %d (attempt %d); re-opening", self.key, self._pos, attempt + 1)
        try:
            return self._read(want)
        except (ReadTimeoutError, ResponseStreamingError, IncompleteReadError) as exc:
            raise VaultError(f"reading {self.key} from S3 kept failing ({exc}); check the network") from exc

    def _read(self, want: int) -> bytes:
        if self._body is None or self._pos >= self._body_end:
            self._drop_body()
            end = min(self._pos + self.block_size, self.size)
            with translated(self.bucket, self.key):
                answer = self.s3.get_object(
                    Bucket=self.bucket, Key=self.key, Range=f"bytes={self._pos}-{end - 1}", IfMatch=self._etag
                )
            self._body, self._body_end = answer["Body"], end
        return self._body.read(min(want, self._body_end - self._pos))

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def close(self) -> None:
        self._drop_body()
        super().close()
