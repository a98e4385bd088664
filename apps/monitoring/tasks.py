"""Celery tasks of monitoring: each loads by id or sweeps, and calls one service. Beat sends
`monitoring.checks_due` and `monitoring.watch_workers` (portal/settings/, "# --- Monitoring");
profile builds and reports are sent by name after commit."""

from __future__ import annotations

from celery import shared_task

from apps.core.audit import acting_as, system_user
from apps.monitoring.services.profiles import profile_build_now
from apps.monitoring.services.reports import report_run, reports_due
from apps.monitoring.services.workers import workers_watch
from apps.monitoring.webhooks.tasks import deliver_webhook, send_due_webhooks  # noqa: F401  (registers them)


def _id(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer id, got {value!r}")
    return value


@shared_task(name="monitoring.build_profile")
def build_profile(profile_id: int) -> dict:
    with acting_as(system_user()):
        profile = profile_build_now(_id(profile_id))
    return {"profile": profile_id, "state": getattr(profile, "state", None)}


@shared_task(name="monitoring.run_report")
def run_report(report_id: int) -> dict:
    with acting_as(system_user()):
        report = report_run(_id(report_id))
    return {"report": report_id, "state": getattr(report, "state", None), "status": getattr(report, "status", None)}


@shared_task(name="monitoring.checks_due")
def checks_due() -> dict:
    with acting_as(system_user()):
        return reports_due()


@shared_task(name="monitoring.watch_workers")
def watch_workers() -> dict:
    with acting_as(system_user()):
        return workers_watch()
