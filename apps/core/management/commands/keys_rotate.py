"""Re-wrap every artifact data key under a new master key; the encrypted blobs stay as they are."""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.core import vault
from apps.core.audit import acting_as, system_user


class Command(BaseCommand):
    help = (
        "Rotate the vault master key. Embedded mode (key ring in var/): generates a new key, makes it "
        "active and re-wraps every data key under it. Configured mode (VAULT_KEYRING): put the new key "
        "first in VAULT_KEYRING, restart, then run this to re-wrap every data key under it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kid", help="key id for the generated key (embedded mode); default k<8 hex>")
        parser.add_argument(
            "--no-generate",
            action="store_true",
            help="embedded mode: do not generate a key, only re-wrap blobs still under older keys",
        )
        parser.add_argument(
            "--retire",
            action="store_true",
            help="embedded mode: afterwards drop old master keys that no artifact is sealed under",
        )
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, kid=None, no_generate=False, retire=False, json=False, **options):
        generate = vault.keyring_is_embedded() and not no_generate
        if kid and not generate:
            raise CommandError("--kid names a generated key; with VAULT_KEYRING set, add the key there instead.")
        try:
            with acting_as(system_user()):
                report = vault.keys_rotate(new_kid=kid, generate=generate)
            if retire and not report["failed"]:
                report["retired_kids"] = vault.keys_retire_unused()
        except vault.KeyRingError as exc:
            raise CommandError(str(exc)) from None
        if json:
            self.stdout.write(_json(report))
        else:
            self.stdout.write(
                f"Active master key: {report['active_kid']} (was {report['previous_kid']}). "
                f"Re-wrapped {report['rewrapped']} data key(s); {report['failed']} failed."
            )
            if report.get("retired_kids"):
                self.stdout.write(f"Retired master keys no artifact uses: {', '.join(report['retired_kids'])}")
            if report["remaining_by_kid"]:
                self.stdout.write(f"Still under older keys: {report['remaining_by_kid']}")
            for error in report["errors"]:
                self.stderr.write(error)
        if report["failed"]:
            raise CommandError(f"{report['failed']} data key(s) could not be re-wrapped; see the errors above.")


def _json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True)
