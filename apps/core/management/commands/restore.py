"""Restore the portal from an archive written by `backup` (stop the web processes and workers first)."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a `backup` archive: every member's digest is checked first, then the vault objects, feature "
        "files, audit checkpoints, key ring (--keyring) and the database are put back, and every artifact "
        "blob is checked. Stop the web processes and workers before running it."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", help="the FILE.tar written by `backup`")
        parser.add_argument("--keyring", help="the key ring file written by `backup --keyring-out`")
        parser.add_argument("--force", action="store_true", help="replace a database that already holds data")
        parser.add_argument("--sample", type=int, default=20, help="how many blobs to decrypt as a check")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")

    def handle(self, *args, archive, keyring=None, force=False, sample=20, no_progress=False, **options):
        path = Path(archive)
        if not path.is_file():
            raise CommandError(f"{archive} does not exist or is not a file.")
        # Read twice: once to verify every digest, once to restore.
        total = 2 * path.stat().st_size
        with tqdm(total=total, unit="B", unit_scale=True, desc="restore", file=sys.stderr, disable=no_progress) as bar:
            try:
                report = backup_restore(
                    path=path, keyring=Path(keyring) if keyring else None, force=force, sample=sample,
                    progress=bar.update,
                )  # fmt: skip
            except (BackupError, OSError) as exc:
                raise CommandError(f"Restore refused: {exc}") from None
        self.stdout.write(
            f"Restored {report['database']}, {report['vault_objects']} vault object(s), "
            f"{report['feature_files']} feature file(s)"
            f"{', the audit checkpoints' if report['audit_checkpoint'] else ''}"
            f"{'; migrated to this code' if report['migrated'] else ''}."
        )
        self.stdout.write(
            f"Vault: {report['blobs']} blob(s), {len(report['missing'])} missing; "
            f"{report['decrypt_checked']} decrypted and verified, {len(report['failed'])} failed."
        )
        for problem in report["missing"] + report["failed"]:
            self.stderr.write(problem)
        if report["missing"] or report["failed"]:
            raise CommandError(
                "Some artifacts are missing or do not decrypt: check that the key ring (--keyring) is the one "
                "written with this backup and that the vault storage is reachable."
            )
