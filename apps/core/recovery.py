"""Jobs survive restarts: the database is the source of truth for every kind of background job.

Each app that runs background jobs provides `apps/<app>/recovery.py` with

    def recover() -> dict:  # e.g. {"requeued": 2, "resumed": 1, "failed": 0}
        '''Find this app's jobs whose Celery message or worker is gone and re-dispatch (queued) or
        resume (running) each exactly once, with a line in the job's log saying so.'''

`recover_all()` calls every app's `recover()`; it runs at start-up (`manage.py up`, once the broker
is reachable) and on a schedule (`core.recover_jobs`, see CELERY_BEAT_SCHEDULE), and with
`manage.py recover_jobs`. A recoverer must be safe to run at any time and twice in a row.
An app whose jobs live in a sub-package keeps its recoverer there (`apps/serving/scoring/recovery.py`,
reported as `serving.scoring`).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from django.apps import apps

from portal.discovery import portal_app_modules

log = logging.getLogger(__name__)


def recover_all() -> dict[str, dict]:
    """Run every app's recoverer; one app's failure is logged and does not stop the others."""
    report: dict[str, dict] = {}
    for label, module in recoverer_modules():
        if not callable(getattr(module, "recover", None)):
            continue  # this module itself (apps.core has no jobs of its own)
        try:
            report[label] = module.recover()
        except Exception as exc:  # a broken recoverer must not keep the others from running
            log.exception("job recovery for %s failed", label)
            report[label] = {"error": str(exc)}
    return report


def recoverer_modules() -> Iterator[tuple[str, ModuleType]]:
    """Every app's `recovery` module, then those of its sub-packages (found by file, so no other
    sub-package is imported to look)."""
    yield from portal_app_modules("recovery")
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        for info in pkgutil.iter_modules([config.path]):
            if info.ispkg and (Path(config.path) / info.name / "recovery.py").is_file():
                yield f"{config.label}.{info.name}", importlib.import_module(f"{config.name}.{info.name}.recovery")
