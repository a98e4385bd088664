"""Jobs survive restarts: the database is the source of truth for every kind of background job.

Each app that runs background jobs provides `apps/<app>/recovery.py` with

    def recover() -> dict:  # e.g. {"requeued": 2, "resumed": 1, "failed": 0}
        '''Find this app's jobs whose Celery message or worker is gone and re-dispatch (queued) or
        resume (running) each exactly once, with a line in the job's log saying so.'''

`recover_all()` calls every app's `recover()`; it runs at start-up (`manage.py up`, once the broker
is reachable) and on a schedule (`core.recover_jobs`, see CELERY_BEAT_SCHEDULE), and with
`manage.py recover_jobs`. A recoverer must be safe to run at any time and twice in a row.
"""

from __future__ import annotations

import logging

from portal.discovery import portal_app_modules

log = logging.getLogger(__name__)


def recover_all() -> dict[str, dict]:
    """Run every app's recoverer; one app's failure is logged and does not stop the others."""
    report: dict[str, dict] = {}
    for label, module in portal_app_modules("recovery"):
        if not callable(getattr(module, "recover", None)):
            continue  # this module itself (apps.core has no jobs of its own)
        try:
            report[label] = module.recover()
        except Exception as exc:  # a broken recoverer must not keep the others from running
            log.exception("job recovery for %s failed", label)
            report[label] = {"error": str(exc)}
    return report
