"""`manage.py recover_jobs`: re-dispatch or resume jobs whose Celery message or worker is gone."""

import json

from django.core.management.base import BaseCommand

from apps.core.recovery import recover_all


class Command(BaseCommand):
    help = "Re-dispatch queued and resume running background jobs whose message or worker is gone."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(recover_all(), indent=2, sort_keys=True))
