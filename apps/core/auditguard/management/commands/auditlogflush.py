"""auditlog's `auditlogflush` deletes or truncates the audit table; here the name only refuses.

Audit entries are never purged (issue 17, retention): the trail is evidence, and deleting from it
is exactly what the chain verifier reports as a flush or a truncation.
"""

from django.core.management.base import BaseCommand, CommandError

REFUSAL = (
    "Refused: audit entries are never purged; see docs/SECURITY.md, 'Audit trail'. "
    "To check the trail, run `manage.py audit_verify`."
)


class Command(BaseCommand):
    help = "Refuses: audit entries are never purged (replaces django-auditlog's flush command)."

    def add_arguments(self, parser):
        # auditlog's options, accepted so that a scripted call gets this refusal, not a usage error.
        parser.add_argument("-y", "--yes", action="store_true")
        parser.add_argument("-b", "--before-date", dest="before_date")
        parser.add_argument("-t", "--truncate", action="store_true")

    def handle(self, *args, **options):
        raise CommandError(REFUSAL, returncode=2)
