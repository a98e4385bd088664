"""Write the portal's whole state (database, vault ciphertext, feature files, audit checkpoints) to one tar."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.backup import BackupError, backup_create, backup_plan


class Command(BaseCommand):
    help = (
        "Back up the portal into one tar: a consistent copy of the database, the vault's ciphertext, the "
        "offline feature files and the audit checkpoints, with a manifest of SHA-256 digests. The key ring "
        "is never in the archive: write it to a separate file with --keyring-out and keep it apart."
    )

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="the archive to write (FILE.tar)")
        parser.add_argument("--keyring-out", help="also write the vault key ring to this file (mode 0600)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on standard error")

    def handle(self, *args, out, keyring_out=None, no_progress=False, **options):
        total = backup_plan()  # the database's size is not known before its copy: the bar may run over
        with tqdm(total=total, unit="B", unit_scale=True, desc="backup", file=sys.stderr, disable=no_progress) as bar:
            try:
                manifest = backup_create(
                    out=Path(out), keyring_out=Path(keyring_out) if keyring_out else None, progress=bar.update
                )
            except (BackupError, OSError) as exc:
                raise CommandError(f"Backup failed: {exc}") from None
        size = sum(m["size"] for m in manifest["members"])
        kinds: dict[str, int] = {}
        for member in manifest["members"]:
            kinds[member["path"].split("/")[0]] = kinds.get(member["path"].split("/")[0], 0) + 1
        self.stdout.write(
            f"Wrote {out}: {len(manifest['members'])} members, {size} bytes "
            f"({', '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))}); database {manifest['database_vendor']}."
        )
        if keyring_out:
            self.stdout.write(f"Key ring written to {keyring_out} (mode 0600): store it apart from the archive.")
        else:
            self.stdout.write(
                "The key ring is not in the archive: without it the vault cannot be read (--keyring-out)."
            )
