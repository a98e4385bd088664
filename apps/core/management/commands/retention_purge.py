"""`manage.py retention_purge [--dry-run]`: purge feature data, prediction logs and run artifacts past
their retention windows (apps/core/retention.py), with a progress bar and a summary.

`--dry-run` lists what would go and deletes nothing. A real purge records one audit event
(`retention.purge`) with the summary per store; audit entries themselves are never purged.
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from apps.core import retention
from apps.core.audit import acting_as, audit_event, system_user


class Command(BaseCommand):
    help = "Delete data past its retention window (feature views, prediction logs, run artifacts); --dry-run lists it."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, cron)")

    def handle(self, *args, dry_run: bool = False, no_progress: bool = False, **options):
        actor = system_user()
        found = list(retention.targets())
        done: list[tuple[retention.Target, dict | None]] = []
        verb = "would delete" if dry_run else "deleting"
        with (
            acting_as(actor),
            tqdm(found, desc="retention", unit="target", disable=no_progress, file=sys.stderr) as bar,
        ):
            for target in bar:
                bar.set_postfix_str(f"{target.store}: {target.label}"[:60])
                line = f"{target.store}: {target.label}: {verb} {target.items} {target.unit}"
                if target.size:
                    line += f" ({target.size} bytes)"
                self.stdout.write(line)
                done.append((target, None if dry_run else target.purge()))
        summary = retention.summarize(done)
        if not dry_run:
            audit_event(actor=actor, event="retention.purge", data={"dry_run": False, "stores": summary})
        title = "Dry run: nothing was deleted." if dry_run else "Retention purge done."
        self.stdout.write(title + (" Nothing is past its retention window." if not found else ""))
        self.stdout.write(json.dumps(summary, indent=2, sort_keys=True))
