"""Retention (storage limitation, GDPR art. 5(1)(e), UAE PDPL): what is due for deletion, across apps.

Each app whose data expires provides `apps/<app>/retention.py` with

    def retention_targets(*, now) -> list[Target]:
        '''What is past its retention window now, as targets that each know how to purge themselves.
        Planning only reads; nothing is deleted until a target's `purge()` is called.'''

`manage.py retention_purge [--dry-run]` lists every app's targets (with a progress bar) and purges
them, then records one summary audit event (`retention.purge`). The daily schedules of the apps
(features, serving, experiments) purge their own data through the same services. Audit entries
are never a target: nothing here or in any provider touches `AuditEntry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.utils import timezone

from portal.discovery import portal_app_modules


@dataclass
class Target:
    """One unit of a purge: a feature view's expired partitions, the prediction logs past their
    window, one experiment's expired run artifacts."""

    store: str  # "feature views", "prediction logs", "run artifacts"
    label: str  # which one, for people: a view's name, a cutoff
    items: int  # how many `unit` would go
    purge: Callable[[], dict] = field(repr=False)
    unit: str = "rows"  # rows, logs, files
    size: int | None = None  # bytes, when known
    detail: dict = field(default_factory=dict)


def targets(*, now=None) -> Iterator[Target]:
    """Every app's retention targets, app by app (label order)."""
    now = now or timezone.now()
    for _label, module in sorted(portal_app_modules("retention"), key=lambda pair: pair[0]):
        provide = getattr(module, "retention_targets", None)
        if callable(provide):
            yield from provide(now=now)


def summarize(done: list[tuple[Target, dict | None]]) -> dict:
    """Per store: targets, items, bytes (and what purging them reported, summed where numeric)."""
    summary: dict[str, dict] = {}
    for target, result in done:
        entry = summary.setdefault(target.store, {"targets": 0, "items": 0, "bytes": 0})
        entry["targets"] += 1
        entry["items"] += target.items
        entry["bytes"] += target.size or 0
        for key, value in (result or {}).items():
            if isinstance(value, int) and not isinstance(value, bool):
                entry[key] = entry.get(key, 0) + value
    return summary
