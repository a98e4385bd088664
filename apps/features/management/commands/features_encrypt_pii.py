"""`manage.py features_encrypt_pii`: seal (encrypt through the vault's key ring) every plain offline
file that holds PII: partitions of views with PII features and training sets with a PII column,
of this portal's region. Files are sealed where they lie, on disk or in S3 (apps/features/sealed.py); running it
again does nothing to files already sealed. New writes of such views and sets are sealed anyway.
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.audit import acting_as, audit_event, system_user
from apps.core.errors import ResidencyError
from apps.features import filestore, offline, sealed
from apps.features.training_sets import pii_training_set_paths
from portal.env import ConfigError


class Command(BaseCommand):
    help = "Encrypt the plain offline-store files of feature views and training sets that hold PII."

    def add_arguments(self, parser):
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs, cron)")

    def handle(self, *args, no_progress: bool = False, **options):
        paths = offline.pii_partition_paths() + pii_training_set_paths()
        counts = {"sealed": 0, "already_sealed": 0, "missing": 0}
        actor = system_user()
        with acting_as(actor):
            for rel in tqdm(paths, desc="sealing PII files", unit="file", disable=no_progress, file=sys.stderr):
                try:
                    found = filestore.exists(rel)
                except (ConfigError, ResidencyError, OSError) as exc:  # storage not set up for this region
                    raise CommandError(f"{exc} ({counts['sealed']} file(s) sealed before this one.)") from None
                if not found:
                    counts["missing"] += 1
                elif sealed.seal_in_place(rel):
                    counts["sealed"] += 1
                else:
                    counts["already_sealed"] += 1
            audit_event(actor=actor, event="features.pii_sealed", data={**counts, "region": offline.process_region()})
        self.stdout.write(json.dumps(counts, sort_keys=True))
