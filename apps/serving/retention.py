"""Prediction logs for `manage.py retention_purge` (apps/core/retention.py): one target, the logs
and traffic windows older than SERVING_LOG_RETENTION_DAYS. The daily task is `serving.retention_sweep`."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from apps.core.retention import Target
from apps.serving.inference.logbook import logs_expire


def retention_targets(*, now: datetime) -> list[Target]:
    due = logs_expire(dry_run=True, now=now)
    if not due["logs_due"] and not due["windows_due"]:
        return []
    return [
        Target(
            store="prediction logs",
            label=f"older than {settings.SERVING_LOG_RETENTION_DAYS} days (before {due['cutoff']})",
            items=due["logs_due"],
            unit="logs",
            purge=lambda: logs_expire(now=now),
            detail={"windows": due["windows_due"]},
        )
    ]
