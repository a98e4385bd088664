"""Where the offline store's files live: the one door every feature-file access goes through.

A stored path (`Partition.path`, `TrainingSet.path`) is relative and starts with its region:
`<region>/<view>/v<version>/date=YYYY-MM-DD/part-<uuid>.parquet`, `<region>/_training-sets/...`.

- Local disk (FEATURE_STORE_S3_BUCKET empty, the default): the file is FEATURE_STORE_ROOT/<path>.
- S3-compatible storage (FEATURE_STORE_S3_BUCKET set): the object is `<path>` itself, region prefix
  included, in the bucket of that region (FEATURE_STORE_S3_BUCKETS[<region>]; the "default" region
  uses FEATURE_STORE_S3_BUCKET). A region without a bucket of its own is refused (ResidencyError,
  apps.core.objectstore.bucket_for): pinned data never falls back to another region's bucket.

Reads and writes go through pyarrow.fs (LocalFileSystem, or an S3FileSystem built here from the
S3_* settings), so pyarrow reads files as random-access streams: ranged GETs on S3, only the
footer and the columns it needs. Deletes on S3 go through boto3's DeleteObjects (apps.core.
objectstore's client): a thousand keys a request, where pyarrow's delete_file costs three and
leaves an empty "folder" object behind (apache/arrow#36275).

Atomicity (apps/features/offline.py): `stage` writes a new file that counts only once the caller's
row is committed. Local: a temp file in the same folder, renamed into place by `Staged.commit`
inside the transaction. S3: one object written under its final name (a PUT, or a multipart upload
for a large one), which readers see only once complete and never read without its row;
`Staged.discard` deletes it when the transaction fails. Encryption is not done here: sealed files
arrive as ciphertext (apps/features/sealed.py), so S3 holds ciphertext only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
from django.conf import settings

from portal.env import ConfigError

T = TypeVar("T")
BLOCK = 1 << 20  # bytes per read when a file is streamed (digests, downloads)
DELETE_BATCH = 1000  # S3's limit on keys per DeleteObjects request
RETRY_ATTEMPTS = 5  # as apps.core.objectstore: throttling, 5xx and connection errors
_LOCAL = pafs.LocalFileSystem()
_s3_filesystems: dict[tuple, pafs.S3FileSystem] = {}
_s3_lock = threading.Lock()


def is_remote() -> bool:
    """Whether feature files live in S3-compatible storage (FEATURE_STORE_S3_BUCKET set)."""
    return bool(settings.FEATURE_STORE_S3_BUCKET)


def region_of(rel: str) -> str:
    """The region a stored path belongs to: its first component."""
    region, sep, rest = rel.partition("/")
    if not sep or not region or not rest:
        raise FileNotFoundError(f"{rel!r} is not a stored feature path (<region>/...).")
    return region


def bucket_for(region: str) -> str:
    """The bucket of `region`'s feature files; ResidencyError when it has none (never the default)."""
    # Late import: apps.core.objectstore loads botocore, which local-disk processes never need.
    from apps.core import objectstore

    return objectstore.bucket_for(settings.FEATURE_STORE_S3_BUCKETS, region)


def _locate(rel: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path in it of the file at `rel`."""
    if is_remote():
        return _s3(), f"{bucket_for(region_of(rel))}/{rel}"
    return _LOCAL, str(local_file(rel))


def local_file(rel: str) -> Path:
    """The path of `rel` on local disk (local mode only)."""
    return Path(settings.FEATURE_STORE_ROOT) / rel


def local_path(rel: str) -> Path | None:
    """The file itself when the store is on local disk (readers that need a path use it in place);
    None on S3, where a caller downloads a copy (`download`)."""
    return None if is_remote() else local_file(rel)


# --- the S3 filesystem ------------------------------------------------------------------------


def _s3() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem for the current S3_* settings: one per process and configuration
    (the pid is part of the key: the AWS SDK's connections must not cross a fork, e.g. Celery's)."""
    from apps.core import objectstore

    return objectstore.built_once(_s3_filesystems, _s3_lock, _s3_key(), _build_s3)


def _s3_key() -> tuple:
    from apps.core import objectstore

    return (os.getpid(), *objectstore.settings_key())


def _build_s3() -> pafs.S3FileSystem:
    from apps.core import objectstore

    key_id, secret = objectstore.credentials()
    scheme, endpoint = "https", None
    if settings.S3_ENDPOINT_URL:
        parts = urlsplit(settings.S3_ENDPOINT_URL)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"S3_ENDPOINT_URL {settings.S3_ENDPOINT_URL!r} is not a URL such as https://minio.example:9000."
            )
        scheme, endpoint = parts.scheme, parts.netloc + parts.path.rstrip("/")
    # pyarrow addresses buckets by path whenever an endpoint is given, virtually on AWS's own;
    # "virtual" forces virtual hosts on a custom endpoint too ("path" cannot change AWS's choice).
    return pafs.S3FileSystem(
        access_key=key_id,
        secret_key=secret,
        region=settings.S3_REGION or None,
        scheme=scheme,
        endpoint_override=endpoint,
        tls_ca_file_path=settings.S3_CA_BUNDLE or None,
        force_virtual_addressing=settings.S3_ADDRESSING_STYLE == "virtual",
        connect_timeout=10,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=RETRY_ATTEMPTS),
    )


# --- reads --------------------------------------------------------------------------------------


def open_input(rel: str) -> pa.NativeFile:
    """A random-access file of `rel` (close it, or use it in `with`): pyarrow reads only the byte
    ranges it needs. FileNotFoundError when it does not exist."""
    fs, path = _locate(rel)
    return fs.open_input_file(path)


def read_bytes(rel: str) -> bytes:
    with open_input(rel) as handle:
        return handle.read()


def exists(rel: str) -> bool:
    fs, path = _locate(rel)
    return fs.get_file_info(path).type == pafs.FileType.File


def size(rel: str) -> int:
    """The stored size of `rel` in bytes (ciphertext for a sealed file); FileNotFoundError when gone."""
    fs, path = _locate(rel)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"{rel} is not in the offline store.")
    return info.size


def sha256(rel: str) -> str:
    """SHA-256 of the stored bytes of `rel` (ciphertext for a sealed file), streamed."""
    digest = hashlib.sha256()
    with open_input(rel) as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(rel: str, dest: Path) -> str:
    """Copy the stored bytes of `rel` to the new local file `dest` (mode 0600), streamed; returns
    their SHA-256."""
    digest = hashlib.sha256()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open_input(rel) as handle, os.fdopen(fd, "wb") as out:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


# --- writes -------------------------------------------------------------------------------------


@dataclass
class Staged:
    """A new file written but not yet counted: `commit` inside the transaction that records it,
    `discard` when that transaction fails (or after it, to undo a commit that was rolled back)."""

    rel: str
    tmp: Path | None  # local: the temp file beside the final one; S3: None (written in place)

    def commit(self) -> None:
        if self.tmp is not None:
            os.replace(self.tmp, local_file(self.rel))

    def discard(self) -> None:
        if self.tmp is None:
            delete([self.rel])
            return
        self.tmp.unlink(missing_ok=True)
        local_file(self.rel).unlink(missing_ok=True)


def stage(rel: str, write: Callable[[BinaryIO], T], *, private: bool = False) -> tuple[Staged, T]:
    """Write a new file at `rel` through `write(sink)` (a binary file object); returns the staged
    file and what `write` returned. `private`: a local file is created mode 0600 (sealed files).
    Whatever fails here leaves nothing behind."""
    if is_remote():
        staged = Staged(rel, None)
        fs, path = _locate(rel)
        try:
            with fs.open_output_stream(path) as sink:
                result = write(sink)
        except BaseException:
            # pyarrow completes an upload when its stream closes, even on an error: delete it.
            with contextlib.suppress(Exception):
                staged.discard()
            raise
        return staged, result
    final = local_file(rel)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Staged(rel, final.parent / f".tmp-{final.name}")
    try:
        result = _write_local(staged.tmp, write, private=private)
    except BaseException:
        staged.tmp.unlink(missing_ok=True)
        raise
    return staged, result


def _write_local(path: Path, write: Callable[[BinaryIO], T], *, private: bool) -> T:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with os.fdopen(fd, "wb") as sink:
        return write(sink)


@dataclass
class Replacement:
    """New bytes for an existing file, produced but not yet in place: `apply` swaps them in whole
    (readers see the old bytes or the new ones, never a mix); `discard` drops them."""

    rel: str
    tmp: Path | None  # local: the temp file beside the file
    data: pa.Buffer | None  # S3: the new object's bytes (S3 has no rename; the object is PUT whole)

    def apply(self) -> None:
        if self.tmp is not None:
            os.replace(self.tmp, local_file(self.rel))
            return
        fs, path = _locate(self.rel)
        with fs.open_output_stream(path) as sink:
            sink.write(self.data)

    def discard(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
        self.data = None


def stage_replacement(rel: str, write: Callable[[BinaryIO], T], *, private: bool = False) -> tuple[Replacement, T]:
    """Produce new bytes for the existing file at `rel` through `write(sink)`; returns the
    replacement (apply it, typically in `transaction.on_commit`) and what `write` returned."""
    if is_remote():
        sink = pa.BufferOutputStream()
        result = write(sink)
        return Replacement(rel, None, sink.getvalue()), result
    final = local_file(rel)
    tmp = final.parent / f".tmp-seal-{final.name}"
    try:
        result = _write_local(tmp, write, private=private)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Replacement(rel, tmp, None), result


def delete(rels: list[str]) -> None:
    """Remove the files at `rels` (those already gone are skipped); on disk, their folders too once
    empty."""
    if not rels:
        return
    if is_remote():
        _delete_objects(rels)
        return
    for rel in rels:
        path = local_file(rel)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # other files (or a concurrent write) still there


def _delete_objects(rels: list[str]) -> None:
    # Late imports: botocore, see bucket_for.
    from apps.core import objectstore

    by_bucket: dict[str, list[str]] = {}
    for rel in rels:
        by_bucket.setdefault(bucket_for(region_of(rel)), []).append(rel)
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = objectstore.client()
    for bucket, keys in by_bucket.items():
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
            try:
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            except (BotoCoreError, ClientError) as exc:
                raise OSError(
                    f"Deleting feature files in S3 bucket {bucket!r} failed: {exc}. Check S3_ENDPOINT_URL, "
                    "FEATURE_STORE_S3_BUCKET / FEATURE_STORE_S3_REGION_BUCKETS and that the credentials may DeleteObject."
                ) from exc
            failed = answer.get("Errors") or []
            if failed:
                first = failed[0]
                raise OSError(
                    f"S3 did not delete {len(failed)} feature file(s) in bucket {bucket!r}, e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message', '')}. Check that the credentials may DeleteObject."
                )
