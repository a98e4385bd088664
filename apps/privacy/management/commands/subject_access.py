import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from apps.core.audit import acting_as
from apps.privacy.management.commands._subject import actor_for, add_subject_arguments, command_error
from apps.privacy.services import subject_access


class Command(BaseCommand):
    help = (
        "Report every place an entity key's data lives: offline store files, online store keys, training "
        "sets, prediction logs and their feedback (audited as subject.accessed, without the key)."
    )

    def add_arguments(self, parser):
        add_subject_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, key, entity=None, as_user=None, json=False, **options):
        actor = actor_for(as_user)
        with acting_as(actor):
            try:
                report = subject_access(actor=actor, key=key, entity=entity, console=True)
            except ValidationError as exc:
                raise command_error(exc) from None
        if json:
            self.stdout.write(_dumps(report))
            return
        for line in report_lines(report):
            self.stdout.write(line)


def _dumps(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True)


def report_lines(report: dict) -> list[str]:
    entities = ", ".join(report["entities"]) or "none (no entity's join keys take this key)"
    lines = [f"entities: {entities}", f"key digest: {report['key_digest']}", f"region: {report['region']}"]
    off = report["offline"]
    lines.append(f"offline store: {off['rows']} rows in {len(off['files'])} files")
    lines += [f"  {f['view']} v{f['version']}: {f['path']} ({f['rows']} rows)" for f in off["files"]]
    lines.append(f"online store: {report['online']['keys']} keys")
    lines += [f"  {e['view']} v{e['version']}: {e['redis_key']!r}" for e in report["online"]["entries"]]
    sets = report["training_sets"]
    lines.append(f"training sets: {sets['rows']} rows in {len(sets['sets'])} sets")
    lines += [f"  {s['name']} (#{s['id']}): {s['path']} ({s['rows']} rows)" for s in sets["sets"]]
    logs = report["prediction_logs"]
    lines.append(f"prediction logs: {logs['rows']} rows")
    lines += [f"  endpoint {e['endpoint']}: {e['rows']} rows" for e in logs["endpoints"]]
    lines.append(f"monitoring feedback: {report['feedback']['rows']} outcomes")
    lines += report["not_indexed"]
    lines += [f"not searched: {s['store']} {s['what']}: {s['reason']}" for s in report["skipped"]]
    if report["certificates"]:
        lines.append("earlier erasures of this key: " + ", ".join(f"#{pk}" for pk in report["certificates"]))
    return lines
