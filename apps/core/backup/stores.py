"""Where a backup's members come from and go back to: the database, object folders and buckets.

A *store* is one place holding files by key: a local folder (VAULT_ROOT, FEATURE_STORE_ROOT) or the
S3 buckets of a region map (VAULT_S3_BUCKETS, FEATURE_STORE_S3_BUCKETS). Archive members are named
``<kind>/<source>/<key>``: source ``local`` for a folder, ``s3-<region>`` for a bucket, so a restore
puts each object back into the bucket of the region it came from (or the folder, in embedded mode).
The database is copied with SQLite's online backup API or ``pg_dump``, never by copying live files.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import connections

from apps.core import objectstore, safefiles

LOCAL = "local"
S3_PREFIX = "s3-"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says what to do."""


@dataclass(frozen=True)
class StoredObject:
    source: str  # "local" or "s3-<region>"
    key: str
    size: int


# --- object stores ---------------------------------------------------------------------------


class ObjectStore:
    """One kind of file (vault ciphertext, feature files): a local folder or per-region buckets."""

    def __init__(self, kind: str, *, root: Path, buckets: dict[str, str]) -> None:
        self.kind, self.root, self.buckets = kind, Path(root), dict(buckets)

    @property
    def is_s3(self) -> bool:
        return bool(self.buckets)

    def objects(self) -> Iterator[StoredObject]:
        """Every object, sorted by key within each source (a folder's temp files are skipped)."""
        if self.is_s3:
            s3 = objectstore.client()
            for region, bucket in sorted(self.buckets.items()):
                with objectstore.translated(bucket):
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                        for item in page.get("Contents", ()):
                            yield StoredObject(f"{S3_PREFIX}{region}", item["Key"], item["Size"])
            return
        if not self.root.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".upload-") or name.startswith(".vault-keyring-"):
                    continue  # half-written files: their writer renames or removes them
                path = Path(dirpath) / name
                yield StoredObject(LOCAL, path.relative_to(self.root).as_posix(), path.stat().st_size)

    @contextlib.contextmanager
    def open(self, item: StoredObject) -> Iterator[BinaryIO]:
        if item.source == LOCAL:
            with (self.root / item.key).open("rb") as handle:
                yield handle
        else:
            bucket = self.buckets[item.source[len(S3_PREFIX) :]]
            # Buffered: tarfile needs every read of n bytes to return n bytes until the end.
            with io.BufferedReader(objectstore.RangedReader(objectstore.client(), bucket, item.key), 1 << 20) as body:
                yield body

    def put(self, source: str, key: str, src: BinaryIO, size: int) -> None:
        """Write one object back: into the bucket of its region (S3) or under the folder."""
        if self.is_s3:
            region = source[len(S3_PREFIX) :] if source.startswith(S3_PREFIX) else "default"
            bucket = self.buckets.get(region)
            if bucket is None:
                raise BackupError(
                    f"the archive holds {self.kind} objects of region {region!r} but no bucket is configured "
                    f"for it: add {region}=<bucket> to {self.kind.upper()}_S3_REGION_BUCKETS and restore again"
                )
            with objectstore.MultipartWriter(objectstore.client(), bucket, key) as out:
                while block := src.read(1 << 20):
                    out.write(block)
            return
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(target, src)

    def exists(self, source: str, key: str) -> bool:
        if not self.is_s3:
            return (self.root / key).is_file()
        bucket = self.buckets.get(source[len(S3_PREFIX) :] if source.startswith(S3_PREFIX) else source)
        if bucket is None:
            return False
        return objectstore.exists(objectstore.client(), bucket, key)


def vault_store() -> ObjectStore:
    from apps.core import vault

    if vault.s3_enabled():
        return ObjectStore("vault", root=Path(settings.VAULT_ROOT), buckets=settings.VAULT_S3_BUCKETS)
    store = vault.storage()
    if not isinstance(store, FileSystemStorage):
        raise BackupError(f"the vault storage {type(store).__name__} (VAULT_STORAGE) is neither a folder nor S3")
    return ObjectStore("vault", root=Path(store.location), buckets={})


def feature_store() -> ObjectStore:
    return ObjectStore(
        "feature_store", root=Path(settings.FEATURE_STORE_ROOT), buckets=settings.FEATURE_STORE_S3_BUCKETS
    )


def atomic_write(target: Path, src: BinaryIO) -> None:
    """Restore one file whole or not at all."""
    safefiles.atomic_write(target, src, prefix=".restore-")


# --- the database ----------------------------------------------------------------------------


def database_vendor() -> str:
    return connections["default"].vendor


def database_dump(workdir: Path) -> Path:
    """A consistent copy of the database in `workdir` (the portal may keep running meanwhile)."""
    db = settings.DATABASES["default"]
    if database_vendor() == "sqlite":
        out = workdir / "portal.sqlite3"
        source = sqlite3.connect(f"file:{db['NAME']}?mode=ro", uri=True)
        target = sqlite3.connect(out)
        try:
            # 4096 pages per step: writers are not held off for the whole copy; a write in between
            # makes sqlite restart the copy from a consistent point.
            source.backup(target, pages=4096)
        finally:
            target.close()
            source.close()
        return out
    if database_vendor() == "postgresql":
        out = workdir / "portal.pgdump"
        _pg_run(["pg_dump", "--format=custom", "--file", str(out), *_pg_args(db), db["NAME"]])
        return out
    raise BackupError(f"backups support SQLite and PostgreSQL, not {database_vendor()}")


def database_load(dump: Path, member: str) -> None:
    """Replace the configured database with `dump` (from an archive member); the portal must be stopped."""
    db = settings.DATABASES["default"]
    connections.close_all()
    if member.endswith(".sqlite3"):
        if database_vendor() != "sqlite":
            raise BackupError(
                "the archive holds a SQLite database; restore it into the embedded mode (no DATABASE_URL)"
            )
        path = Path(db["NAME"])
        path.parent.mkdir(parents=True, exist_ok=True)
        check = sqlite3.connect(dump)
        try:
            if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise BackupError(f"{member}: the SQLite copy fails its integrity check")
        finally:
            check.close()
        for suffix in ("-wal", "-shm", "-journal"):  # the old file's logs must not replay onto the new one
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.replace(dump, path)
        return
    if database_vendor() != "postgresql":
        raise BackupError("the archive holds a PostgreSQL dump; set DATABASE_URL to the PostgreSQL database first")
    _pg_run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", db["NAME"], *_pg_args(db), str(dump)])


def _pg_args(db: dict) -> list[str]:
    args = []
    if db.get("HOST"):
        args += ["--host", str(db["HOST"])]
    if db.get("PORT"):
        args += ["--port", str(db["PORT"])]
    if db.get("USER"):
        args += ["--username", str(db["USER"])]
    return [*args, "--no-password"]


def _pg_run(argv: list[str]) -> None:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])  # never on the command line (visible in ps)
    sslmode = (db.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        env["PGSSLMODE"] = str(sslmode)
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # noqa: S603  fixed argv, no shell
    except FileNotFoundError:
        raise BackupError(
            f"{argv[0]} is not installed: install the PostgreSQL client tools (postgresql-client)"
        ) from None
    if result.returncode != 0:
        raise BackupError(f"{argv[0]} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
