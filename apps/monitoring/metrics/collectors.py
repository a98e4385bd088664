"""Gauges read at scrape time, as a prometheus_client collector (the in-process counters and
histograms are written by apps/monitoring/metrics/text.py).

- `Platform`: gauges read from the broker and the database on each scrape: queue depths and
  workers per queue (the heartbeats of apps/core/workers.py), jobs by kind and state (one GROUP BY
  per table), drift status per endpoint (its latest succeeded drift report) and open alerts. A
  source that fails is left out of that scrape and `portal_scrape_source_up{source}` reads 0.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery
from prometheus_client.core import GaugeMetricFamily

from apps.core import workers
from apps.core.queues import BASE_QUEUES
from apps.features.models import MaterializationJob
from apps.monitoring.models import Alert, DriftReport
from apps.serving.models import Endpoint, ScoringJob
from apps.training.models import TrainingJob

log = logging.getLogger(__name__)
DRIFT_LEVELS = {DriftReport.Status.OK: 0, DriftReport.Status.WARNING: 1, DriftReport.Status.DRIFT: 2}
JOB_TABLES = {
    "training": TrainingJob,
    "materialization": MaterializationJob,
    "scoring": ScoringJob,
    "drift_report": DriftReport,
}


class Platform:
    """Gauges read from the broker and the database on each scrape."""

    def collect(self):
        up = GaugeMetricFamily(
            "portal_scrape_source_up", "1 when the source could be read during this scrape, else 0.", labels=["source"]
        )
        for source, read in (("broker", self._broker), ("database", self._database)):
            try:
                families = list(read())
            except Exception as exc:  # one source down must not cost the rest of the scrape
                log.warning("metrics: could not read the %s: %s", source, exc)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _broker(self):
        by_queue = workers.workers_by_queue()
        queues = set(BASE_QUEUES) | set(by_queue)
        if settings.PORTAL_REGION != "default":
            queues |= {f"{q}.{settings.PORTAL_REGION}" for q in BASE_QUEUES}
        depths = workers.queue_depths(sorted(queues))
        depth = GaugeMetricFamily("portal_queue_depth", "Messages waiting in a broker queue.", labels=["queue"])
        online = GaugeMetricFamily("portal_workers", "Workers online that consume a queue.", labels=["queue"])
        for queue in sorted(queues):
            depth.add_metric([queue], depths.get(queue, 0))
            online.add_metric([queue], by_queue.get(queue, 0))
        yield depth
        yield online

    def _database(self):
        jobs = GaugeMetricFamily("portal_jobs", "Jobs by kind and state.", labels=["kind", "state"])
        for kind, model in JOB_TABLES.items():
            counts = dict.fromkeys(model.State.values, 0)
            for row in model.objects.order_by().values("state").annotate(n=Count("pk")):
                counts[row["state"]] = row["n"]
            for state, n in counts.items():
                jobs.add_metric([kind, state], n)
        yield jobs

        latest = (
            DriftReport.objects.filter(endpoint=OuterRef("pk"), state=DriftReport.State.SUCCEEDED)
            .order_by("-created_at", "-id")
            .values("status")[:1]
        )
        drift = GaugeMetricFamily(
            "portal_drift_status",
            "Latest succeeded drift report per endpoint: 0 ok, 1 warning, 2 drift.",
            labels=["endpoint"],
        )
        rows = (
            Endpoint.objects.filter(archived_at__isnull=True)
            .annotate(drift=Subquery(latest))
            .filter(drift__isnull=False)
            .order_by("name")
            .values_list("name", "drift")
        )
        for name, status in rows:
            if status in DRIFT_LEVELS:
                drift.add_metric([name], DRIFT_LEVELS[status])
        yield drift

        alerts = GaugeMetricFamily(
            "portal_alerts_open", "Open alerts by kind and severity.", labels=["kind", "severity"]
        )
        counts = {(k, s): 0 for k in Alert.Kind.values for s in Alert.Severity.values}
        open_rows = Alert.objects.filter(state=Alert.State.OPEN).order_by().values("kind", "severity")
        for row in open_rows.annotate(n=Count("pk")):
            counts[(row["kind"], row["severity"])] = row["n"]
        for (kind, severity), n in counts.items():
            alerts.add_metric([kind, severity], n)
        yield alerts
