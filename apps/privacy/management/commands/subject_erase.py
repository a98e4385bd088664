from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.audit import acting_as
from apps.privacy.management.commands._subject import actor_for, add_subject_arguments, command_error
from apps.privacy.services import subject_access, subject_erase

LABELS = {"offline": "offline files", "online": "online store", "training_sets": "training sets",
          "prediction_logs": "prediction logs"}  # fmt: skip


class Command(BaseCommand):
    help = (
        "Erase an entity key's data everywhere (rewriting offline files and training sets without its rows, "
        "deleting its online keys, prediction logs and feedback) and record an erasure certificate in the "
        "audit trail. Safe to repeat: a second run certifies zero."
    )

    def add_arguments(self, parser):
        add_subject_arguments(parser)
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, key, entity=None, as_user=None, yes=False, **options):
        actor = actor_for(as_user)
        with acting_as(actor):
            try:
                if not yes:
                    self._confirm(actor, key, entity)
                bars = _Bars(getattr(self.stderr, "_out", self.stderr))
                try:
                    certificate = subject_erase(actor=actor, key=key, entity=entity, progress=bars, console=True)
                finally:
                    bars.close()
            except ValidationError as exc:
                raise command_error(exc) from None
        self.stdout.write(f"erasure certificate {certificate.pk}: {certificate.state}")
        for store, counts in certificate.counts.items():
            extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in counts.items() if k != "removed")
            self.stdout.write(f"  {store}: {counts['removed']} removed{extra}")
        for item in certificate.skipped:
            self.stdout.write(f"  not erased: {item['store']} {item['what']}: {item['reason']}")
        self.stdout.write("  run artifacts: not indexed by entity key")
        self.stdout.write(
            f"  certificate sha256: {certificate.document_sha256} (audit entry {certificate.audit_entry_id})"
        )

    def _confirm(self, actor, key, entity) -> None:
        report = subject_access(actor=actor, key=key, entity=entity, console=True)
        found = (
            f"{report['offline']['rows']} offline rows, {report['online']['keys']} online keys, "
            f"{report['training_sets']['rows']} training-set rows, {report['prediction_logs']['rows']} prediction logs"
        )
        answer = input(f"Erase {found} for this key, for good? Type 'yes' to go on: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing was erased.")


class _Bars:
    """One tqdm bar per store, advanced per file (or per step), on standard error."""

    def __init__(self, stream):
        self.stream, self.bars = stream, {}

    def __call__(self, store: str, done: int, total: int) -> None:
        bar = self.bars.get(store)
        if bar is None:
            bar = self.bars[store] = tqdm(total=total, desc=LABELS.get(store, store), unit="file", file=self.stream)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
