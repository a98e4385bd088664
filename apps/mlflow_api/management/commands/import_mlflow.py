"""`python manage.py import_mlflow --tracking-uri <uri or mlruns folder> --owner <username>`."""

import json
import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.audit import acting_as
from apps.core.permissions import can
from apps.experiments.models import Experiment, Run
from apps.mlflow_api.importer import Importer, SourceError, open_reader


class Command(BaseCommand):
    help = (
        "Import experiments, runs (params, metric histories, tags, artifacts) and registered ONNX models with "
        "their versions from MLflow: an mlruns folder or an http(s) tracking server (token from "
        "MLFLOW_TRACKING_TOKEN). Safe to repeat: what was imported before is skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tracking-uri", required=True, help="an mlruns folder (path or file:// URI) or http(s) URI"
        )
        parser.add_argument(
            "--owner", help="the portal user who owns what is imported (every write is audited as them)"
        )
        parser.add_argument("--dry-run", action="store_true", help="read everything and count, write nothing")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the summary as JSON")

    def handle(self, tracking_uri, owner=None, dry_run=False, as_json=False, **options):
        user = owner_for(owner)
        # The MLflow client's own variables name the *source* server's credentials; they are not
        # portal settings, so they are read here and nowhere else.
        env = os.environ
        try:
            reader = open_reader(
                tracking_uri, token=env.get("MLFLOW_TRACKING_TOKEN"),
                username=env.get("MLFLOW_TRACKING_USERNAME"), password=env.get("MLFLOW_TRACKING_PASSWORD"),
            )  # fmt: skip
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        bar = _Bar(getattr(self.stderr, "_out", self.stderr))
        try:
            with acting_as(user):
                summary = Importer(reader, owner=user, dry_run=dry_run, progress=bar).run()
        except SourceError as exc:
            raise CommandError(f"The import stopped: {exc}") from None
        except Exception as exc:
            if options.get("traceback"):
                raise
            # What was imported so far stays (each item is written whole) and a rerun goes on from there.
            raise CommandError(
                f"The import stopped on an unexpected error ({type(exc).__name__}: {exc}). What was imported so far "
                "is kept; run it again to go on, or with --traceback to see where it failed."
            ) from None
        finally:
            bar.close()
            reader.close()
        self._report(summary, reader.description, as_json=as_json)
        if summary.failed:
            raise CommandError(f"{summary.failed} item(s) failed to import; see above. Fix them and run it again.")

    def _report(self, summary, description: str, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({"source": description, **summary.as_dict()}, indent=2))
            return
        self.stdout.write(f"{'Dry run, nothing written: ' if summary.dry_run else 'Imported from '}{description}")
        for line in summary.lines():
            self.stdout.write(line)


def owner_for(username: str | None):
    """The active user named by --owner, who must be allowed to create experiments and runs."""
    if not username:
        raise CommandError("Give --owner <username>: the portal user who will own what is imported.")
    user = get_user_model().objects.filter(username=username).first()
    if user is None or not user.is_active:
        raise CommandError(f"No active portal user called {username!r}.")
    missing = [label for label, model in (("experiments", Experiment), ("runs", Run)) if not can(user, "add", model)]
    if missing:
        raise CommandError(
            f"{username} may not create {' or '.join(missing)}: give them a role that may (e.g. ML engineers)."
        )
    return user


class _Bar:
    """A tqdm bar on standard error, one step per run and per model version."""

    def __init__(self, stream):
        self.stream, self.bar = stream, None

    def start(self, total: int) -> None:
        self.bar = tqdm(total=total, desc="importing", unit="item", file=self.stream)

    def advance(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
