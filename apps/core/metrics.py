"""The portal's in-process instruments: request, predict and online-read latencies, counted where
they happen and turned into Prometheus samples only when `/metrics` is scraped
(apps/monitoring/metrics). Every app may import this module; it imports nothing of theirs.

Processes. `manage.py up` serves HTTP from one uvicorn process (apps/core/launcher.py, no
`--workers`): the lean ASGI paths on its event loop, Django's chain on PORTAL_WEB_THREADS
threads. Celery workers and beat serve no HTTP. So every request and prediction is counted in the
process that answers `/metrics`, and these tables are read directly: no prometheus_client
multiprocess mode (an mmap file per process and metric, merged on every scrape). Should the web
ever run several processes, each would report only its own share; switch to multiprocess mode
then (PROMETHEUS_MULTIPROC_DIR under VAR_DIR, cleaned at start).

Cost. prometheus_client's `Histogram.observe` takes a lock and walks its buckets per call. Here an
observation is a dict lookup in the calling thread's own shard (no lock: a shard has one writer),
a `bisect` on fixed bucket edges, and two additions; the scrape merges the shards. Shards outlive
their threads, so counters never go back. bench/metrics_overhead.py measures it
(docs/performance/metrics.md).

Label cardinality stays bounded: routes are URL patterns (`request.resolver_match.route`, never the
path; "unmatched" for a 404 without a route), methods outside the HTTP set read "other", endpoint
and route names are the endpoints' own, and a shard holding MAX_SERIES keys files new ones under
"other".
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from time import perf_counter

from django.conf import settings

from apps.core import logjson

# Seconds; the predict path answers in ~0.1 ms in process, a list page in tens of milliseconds.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_SERIES = 2000
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Timings:
    """Durations keyed by a tuple of label values, as bucket counts and a sum per key.

    `observe(("fraud", "main", 200), 0.0004)`; `snapshot()` gives {key: (counts, sum)}, the counts
    per bucket (not cumulative), the last one past the largest edge."""

    def __init__(self, name: str, labelnames: tuple[str, ...], buckets: tuple[float, ...] = BUCKETS):
        self.name, self.labelnames, self.buckets = name, labelnames, tuple(buckets)
        self.enabled = True
        self._width = len(self.buckets) + 1
        self._local = threading.local()
        self._shards: list[dict] = []
        self._lock = threading.Lock()  # taken when a thread first observes, and by snapshot/reset

    def observe(self, key: tuple, seconds: float) -> None:
        if not self.enabled:
            return
        try:
            shard = self._local.shard
        except AttributeError:
            shard = self._new_shard()
        row = shard.get(key)
        if row is None:
            if len(shard) >= MAX_SERIES:
                key = ("other",) * len(key)
                row = shard.get(key)
            if row is None:
                row = shard[key] = [0] * self._width + [0.0]
        row[bisect_left(self.buckets, seconds)] += 1  # le is inclusive: a value on an edge is in it
        row[-1] += seconds

    def _new_shard(self) -> dict:
        shard: dict = {}
        with self._lock:
            self._shards.append(shard)
        self._local.shard = shard
        return shard

    def snapshot(self) -> dict[tuple, tuple[list[int], float]]:
        """Every thread's observations merged. A shard may gain a key or a count meanwhile: the
        copy is taken under the GIL one shard at a time, and the next scrape sees the rest."""
        with self._lock:
            shards = list(self._shards)
        merged: dict[tuple, tuple[list[int], float]] = {}
        for shard in shards:
            for key, row in list(shard.items()):
                counts = row[:-1]
                total = row[-1]
                found = merged.get(key)
                if found is None:
                    merged[key] = (counts, total)
                else:
                    merged[key] = ([a + b for a, b in zip(found[0], counts, strict=True)], found[1] + total)
        return merged

    def reset(self) -> None:
        """Forget everything (tests): each thread starts a new shard on its next observation."""
        with self._lock:
            self._shards = []
            self._local = threading.local()


HTTP = Timings("portal_http_request", ("route", "method", "status"))
PREDICT = Timings("portal_predict", ("endpoint", "route", "status"))
ONLINE_READ = Timings("portal_online_read", ("path",))
ALL = (HTTP, PREDICT, ONLINE_READ)


def set_enabled(enabled: bool) -> None:
    """Turn every instrument on or off (settings.METRICS_ENABLED; the overhead benchmark)."""
    for timings in ALL:
        timings.enabled = enabled


def method_label(method: str | None) -> str:
    return method if method in METHODS else "other"


def _configure() -> None:
    if settings.configured:
        set_enabled(settings.METRICS_ENABLED)


_configure()


class RequestMetricsMiddleware:
    """Count every request Django answers, with its duration, by route pattern, method and status;
    and bind the request to the log lines written meanwhile (apps/core/logjson.py). First in
    MIDDLEWARE, so the time covers the whole chain. The lean paths count their own requests."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = perf_counter()
        bound = logjson.bind(request)
        try:
            response = self.get_response(request)
        finally:
            logjson.unbind(bound)
        match = request.resolver_match
        HTTP.observe(
            ("/" + match.route if match is not None else UNMATCHED, method_label(request.method), response.status_code),
            perf_counter() - started,
        )
        return response
