"""Platform metrics in Prometheus text at `/metrics` (issue #16): the in-process instruments of
apps/core/metrics.py and gauges read at scrape time from the broker and the database."""

from apps.monitoring.metrics.views import REGISTRY, exposition, metrics_view

__all__ = ["REGISTRY", "exposition", "metrics_view"]
