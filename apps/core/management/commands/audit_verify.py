"""Verify the whole audit trail: keyed hashes, links, and every signed checkpoint outside the table."""

import json

from django.core.management.base import BaseCommand, CommandError

from apps.core.audit_chain import chain_checkpoint, verify_chain


class Command(BaseCommand):
    help = (
        "Verify the audit chain (keyed entry hashes, links, checkpoints in AUDIT_CHECKPOINT_PATH); "
        "exits 1 and names the first broken entry and the failed check if it does not hold."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--checkpoint", action="store_true", help="when the chain holds, also write a checkpoint of its head"
        )

    def handle(self, *args, **options):
        report = verify_chain()
        if report.ok and options["checkpoint"]:
            chain_checkpoint(report)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        elif report.ok:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Audit chain intact: {report.checked} entries verified through entry {report.verified_through}"
                    f" (last checkpoint: {report.last_checkpoint_seq or 'none yet'})."
                )
            )
        if not report.ok:
            raise CommandError(
                f"Audit chain broken at entry {report.first_broken_id} ({report.check}: {report.check_label}): "
                f"{report.reason}."
            )
