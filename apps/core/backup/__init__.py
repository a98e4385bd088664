"""Backups of the whole portal state into one tar, and their restore (the `backup` and `restore` commands).

``services``: ``backup_create`` (database, vault ciphertext, feature files, audit checkpoints;
never the key ring). ``restore``: ``backup_restore`` (verify everything, then put it back) and
``blobs_check``. ``archive``: the tar format and its manifest. ``stores``: where members come from.
"""

from apps.core.backup.restore import backup_restore, blobs_check
from apps.core.backup.services import backup_create, backup_plan, keyring_spec, migration_heads
from apps.core.backup.stores import BackupError

__all__ = [
    "BackupError",
    "backup_create",
    "backup_plan",
    "backup_restore",
    "blobs_check",
    "keyring_spec",
    "migration_heads",
]
