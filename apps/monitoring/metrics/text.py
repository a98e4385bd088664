"""The in-process instruments (apps/core/metrics.py) as Prometheus text, format 0.0.4.

One table gives two families: a `_total` counter by all its labels (status included) and a
latency histogram without the status label. Written here rather than through prometheus_client's
`generate_latest`, which formats every sample on its own: with ~150 routes, methods and statuses
that is ~3,000 lines and took ~70 ms per scrape on this machine, on a web thread of the process
that also answers predictions; here the label text of a series is built once and reused.
"""

from __future__ import annotations

from itertools import accumulate

from prometheus_client.utils import floatToGoString

from apps.core import metrics

# (instrument, counter name and help or None, histogram name and help, labels the histogram keeps)
TIMED = (
    (
        metrics.HTTP,
        ("portal_http_requests_total", "Requests answered, by route pattern, method and status."),
        ("portal_http_request_duration_seconds", "Time to answer a request, by route pattern and method."),
        ("route", "method"),
    ),
    (
        metrics.PREDICT,
        ("portal_predictions_total", "Online predictions that reached a model, by endpoint, route and status."),
        ("portal_predict_duration_seconds", "Time of one online prediction call, by endpoint and route."),
        ("endpoint", "route"),
    ),
    (
        metrics.ONLINE_READ,
        None,
        ("portal_online_read_duration_seconds", "Time of one online feature read (all its features and entities)."),
        ("path",),
    ),
)
_labels_cache: dict[tuple, str] = {}


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(names: tuple[str, ...], values: tuple) -> str:
    """`a="x",b="y"` for these names and values, built once per series."""
    key = (names, values)
    found = _labels_cache.get(key)
    if found is None:
        if len(_labels_cache) > 4 * metrics.MAX_SERIES:  # bounded like the series themselves
            _labels_cache.clear()
        found = _labels_cache[key] = ",".join(
            f'{name}="{_escape(str(value))}"' for name, value in zip(names, values, strict=True)
        )
    return found


def _merge(snapshot: dict, positions: list[int]) -> dict[tuple, tuple[list[int], float]]:
    merged: dict[tuple, tuple[list[int], float]] = {}
    for key, (counts, total) in snapshot.items():
        short = tuple(str(key[i]) for i in positions)
        found = merged.get(short)
        if found is None:
            merged[short] = (counts, total)
        else:
            merged[short] = ([a + b for a, b in zip(found[0], counts, strict=True)], found[1] + total)
    return merged


def timings_text() -> str:
    out: list[str] = []
    for timings, counter, histogram, kept in TIMED:
        snapshot = timings.snapshot()
        if counter is not None:
            name, text = counter
            out.append(f"# HELP {name} {text}\n# TYPE {name} counter\n")
            for key in sorted(snapshot, key=lambda k: tuple(map(str, k))):
                out.append(f"{name}{{{_labels(timings.labelnames, key)}}} {sum(snapshot[key][0])}\n")
        name, text = histogram
        out.append(f"# HELP {name} {text}\n# TYPE {name} histogram\n")
        edges = [f'le="{floatToGoString(edge)}"' for edge in timings.buckets] + ['le="+Inf"']
        merged = _merge(snapshot, [timings.labelnames.index(label) for label in kept])
        for key in sorted(merged):
            counts, total = merged[key]
            labels = _labels(kept, key)
            bucket = f"{name}_bucket{{{labels},"
            out.extend(f"{bucket}{edge}}} {n}\n" for edge, n in zip(edges, accumulate(counts), strict=True))
            out.append(f"{name}_count{{{labels}}} {sum(counts)}\n{name}_sum{{{labels}}} {floatToGoString(total)}\n")
    return "".join(out)
