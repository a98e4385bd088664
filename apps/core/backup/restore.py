"""backup_restore: verify an archive completely, then put the portal's state back from it.

Order matters: nothing is changed until every member's digest, the manifest, the migration heads,
the key ring file and the target's emptiness have been checked. Objects and files go back first
and the database last (one rename for SQLite, pg_restore for PostgreSQL), so an interrupted restore
leaves the old database in place. Stop the web processes and workers before restoring.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

from apps.core import vault
from apps.core.audit import SYSTEM_USERNAME, acting_as, audit_event, system_user
from apps.core.backup.archive import members, read_verified_manifest
from apps.core.backup.services import CHECKPOINT_MEMBER
from apps.core.backup.stores import (
    LOCAL,
    S3_PREFIX,
    BackupError,
    atomic_write,
    database_load,
    database_vendor,
    feature_store,
    vault_store,
)
from apps.core.crypto import KeyRing, KeyRingError, VaultError
from apps.core.models import VaultBlob
from apps.core.safefiles import write_private

Progress = Callable[[int], None]


def backup_restore(
    *, path: Path, keyring: Path | None = None, force: bool = False, sample: int = 20, progress: Progress | None = None
) -> dict:
    """Restore the archive at `path`; returns a report (members restored, blobs checked, problems).

    Raises BackupError, before changing anything, for a damaged or tampered archive, an archive from
    newer code, an unusable key ring file, or a target that already holds data (unless `force`).
    """
    manifest = read_verified_manifest(str(path), progress=progress)
    ring_text = _keyring_text(keyring)
    _check_heads(manifest["migration_heads"])
    if manifest["database_vendor"] != database_vendor():
        raise BackupError(
            f"the archive holds a {manifest['database_vendor']} database but this installation uses "
            f"{database_vendor()}: restore it into the same kind (DATABASE_URL set for PostgreSQL, unset for SQLite)"
        )
    if not force and _target_holds_data():
        raise BackupError(
            "the target database already holds users or artifacts; restore into a fresh installation, "
            "or pass --force to replace everything it holds"
        )
    counts = _restore_members(path, progress)
    if ring_text is not None:
        write_private(vault.keyring_path(), ring_text.encode() + b"\n")
    connections.close_all()
    migrated = _behind_code()
    if migrated:
        call_command("migrate", verbosity=0, interactive=False)
    report = {**counts, "migrated": migrated, **blobs_check(sample=sample)}
    with acting_as(system_user()):
        audit_event(
            actor=system_user(),
            event="backup.restore",
            data={"archive": Path(path).name, "created_at": manifest["created_at"], **counts,
                  "blobs": report["blobs"], "blobs_missing": len(report["missing"]),
                  "blobs_failed": len(report["failed"])},
        )  # fmt: skip
    return report


def _keyring_text(keyring: Path | None) -> str | None:
    if keyring is None:
        return None
    if not vault.keyring_is_embedded():
        raise BackupError(
            f"VAULT_KEYRING is configured here: put the ring from {keyring} into VAULT_KEYRING "
            "(or VAULT_KEYRING_FILE) and restore without --keyring"
        )
    try:
        text = Path(keyring).read_text().strip()
        KeyRing.from_spec(text)
    except (OSError, KeyRingError, ValueError) as exc:
        raise BackupError(f"{keyring} is not a usable key ring file: {exc}") from None
    return text


def _behind_code() -> bool:
    """Whether the restored database lacks migrations this code has (an older backup)."""
    executor = MigrationExecutor(connections["default"])
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def _check_heads(archive_heads: dict[str, str]) -> None:
    """Refuse an archive whose database is at a migration this code does not know."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    for app, name in sorted(archive_heads.items()):
        if (app, name) not in graph.nodes:
            raise BackupError(
                f"the archive's database is at migration {app}.{name}, which this code does not have: "
                "upgrade the code first (to the version that wrote the backup or later), then restore"
            )


def _target_holds_data() -> bool:
    try:
        users = get_user_model().objects.exclude(username=SYSTEM_USERNAME).exists()
        return users or VaultBlob.objects.exists()
    except DatabaseError:  # no tables yet: a fresh installation
        connections.close_all()
        return False


def _restore_members(path: Path, progress: Progress | None) -> dict:
    stores = {"vault": vault_store(), "features": feature_store()}
    counts = {"vault_objects": 0, "feature_files": 0, "database": None, "audit_checkpoint": False}
    database = None
    with tempfile.TemporaryDirectory(prefix=".portal-restore-", dir=settings.VAR_DIR) as workdir:
        for info, src in members(str(path)):
            kind, _, rest = info.name.partition("/")
            if kind in stores:
                source, _, key = rest.partition("/")
                stores[kind].put(source, key, src, info.size)
                counts["vault_objects" if kind == "vault" else "feature_files"] += 1
            elif kind == "database":
                database = (Path(workdir) / Path(rest).name, info.name)
                atomic_write(database[0], src)
            elif info.name == CHECKPOINT_MEMBER:
                target = Path(settings.AUDIT_CHECKPOINT_PATH)
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(target, src)
                counts["audit_checkpoint"] = True
            else:
                raise BackupError(f"{info.name}: not a member this version of `restore` knows")
            if progress:
                progress(info.size)
        if database is None:
            raise BackupError("the archive holds no database member")
        database_load(*database)
        counts["database"] = database[1]
    return counts


def blobs_check(*, sample: int = 20) -> dict:
    """Every VaultBlob row has its object; `sample` random blobs decrypt and match their digest."""
    store = vault_store()
    total, missing, failed = 0, [], []
    # The region column arrives with the S3 vault; rows written before it live in the default bucket.
    columns = ("pk", "storage_key", *(("region",) if _has_region_column() else ()))
    for row in VaultBlob.objects.order_by("pk").values(*columns).iterator():
        total += 1
        source = f"{S3_PREFIX}{row.get('region', 'default')}" if store.is_s3 else LOCAL
        if not store.exists(source, row["storage_key"]):
            missing.append(f"blob {row['pk']}: {row['storage_key']}")
    checked = 0
    for blob in VaultBlob.objects.order_by("?")[:sample]:
        checked += 1
        try:
            vault.blob_verify(blob)
        except VaultError as exc:
            failed.append(f"blob {blob.pk}: {exc}")
    return {"blobs": total, "missing": missing[:50], "decrypt_checked": checked, "failed": failed[:50]}


def _has_region_column() -> bool:
    return any(field.name == "region" for field in VaultBlob._meta.get_fields())
