"""backup_create: what the `backup` command does (its counterpart, backup_restore, is in restore.py).

It runs as the system user and is audited (`backup.create`, in the source database, after the
archive is complete). The key ring never goes into an archive: it is written to a file of its own
(mode 0600) on request, and a restore takes it back from such a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from apps.core import vault
from apps.core.audit import acting_as, audit_event, system_user
from apps.core.backup.archive import ArchiveWriter
from apps.core.backup.stores import (
    LOCAL,
    ObjectStore,
    database_dump,
    database_vendor,
    feature_store,
    vault_store,
)
from apps.core.safefiles import write_private

Progress = Callable[[int], None]
CHECKPOINT_MEMBER = "audit/audit-checkpoints.jsonl"


def migration_heads() -> dict[str, str]:
    """The latest applied migration of every app in the database (what its schema is at)."""
    applied = MigrationLoader(connections["default"], ignore_no_migrations=True).applied_migrations
    heads: dict[str, str] = {}
    for app, name in applied:
        heads[app] = max(heads.get(app, name), name)  # names start with a zero-padded number
    return dict(sorted(heads.items()))


def _stores() -> list[tuple[str, ObjectStore]]:
    return [("vault", vault_store()), ("features", feature_store())]


def backup_plan() -> int:
    """The total size in bytes of what a backup copies besides the database (for a progress bar)."""
    return sum(item.size for _, store in _stores() for item in store.objects())


def backup_create(*, out: Path, keyring_out: Path | None = None, progress: Progress | None = None) -> dict:
    """Write the archive to `out` (through a temporary file renamed at the end) and return its manifest.

    `progress(n)` is called with each chunk's byte count. The key ring goes to `keyring_out` only.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    manifest = {
        "created_at": timezone.now().isoformat(),
        "database_vendor": database_vendor(),
        "migration_heads": migration_heads(),
        "vault_mode": "s3" if vault_store().is_s3 else LOCAL,
        "feature_store_mode": "s3" if feature_store().is_s3 else LOCAL,
    }
    stores = _stores()
    with tempfile.TemporaryDirectory(prefix="portal-backup-", dir=out.parent) as workdir:
        dump = database_dump(Path(workdir))
        partial = Path(workdir) / "archive.tar"
        with partial.open("wb") as handle:
            writer = ArchiveWriter(handle, progress=progress)
            with dump.open("rb") as src:
                writer.add(f"database/{dump.name}", src, dump.stat().st_size)
            dump.unlink()
            for kind, store in stores:
                for item in store.objects():
                    with store.open(item) as src:
                        writer.add(f"{kind}/{item.source}/{item.key}", src, item.size)
            checkpoint = Path(settings.AUDIT_CHECKPOINT_PATH)
            if checkpoint.is_file():
                with checkpoint.open("rb") as src:
                    writer.add(CHECKPOINT_MEMBER, src, os.fstat(src.fileno()).st_size)
            manifest = writer.close(manifest)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, out)
    if keyring_out is not None:
        write_private(Path(keyring_out), keyring_spec().encode() + b"\n")
    with acting_as(system_user()):
        audit_event(actor=system_user(), event="backup.create", data=_audit_summary(manifest, out))
    return manifest


def keyring_spec() -> str:
    """The master key ring as text: the embedded ring file, or the configured VAULT_KEYRING."""
    if vault.keyring_is_embedded():
        vault.keyring()  # generated on first use, like every other reader of the ring
        return vault.keyring_path().read_text().strip()
    return settings.VAULT_KEYRING


def _audit_summary(manifest: dict, path: Path) -> dict:
    return {
        "archive": path.name,
        "members": len(manifest["members"]),
        "bytes": sum(m["size"] for m in manifest["members"]),
        "database_vendor": manifest["database_vendor"],
    }
