"""Live updates for runs: coalesced per run so that a fast trainer cannot flood browsers.

Every committed log-batch hands its points to `publish()` (from `transaction.on_commit`). This
module only merges: flushes are scheduled on, and messages leave through, the one broadcaster
(`apps.core.realtime.call_later` / `send_now`), so a process runs no event loop thread of its
own for experiments. Per run, at most one flush happens per window (`EXPERIMENTS_LIVE_WINDOW_S`,
default 0.1 s): the first batch after a quiet period goes out at once; batches arriving within
the window are merged and sent when it ends. A flush sends to group `run.<id>`:

- at most one point per key and at most 10 keys (a trainer logging once per step or epoch):
  one `{"type": "metric", "run", "key", "step", "value", "ts"}` message each (API.md);
- anything more (a fast trainer, a big batch): a single `{"type": "metrics", "run", "points": [{"key", "step", "value", "ts"}, ...],
  "total": n}` message with at most 200 points per key, chosen by the min/max method (first,
  last and extremes kept). A page that wants every point reads the series API.

So a run sends at most ~10 metric messages per window however fast it logs. The experiment group
`experiment.<id>` gets the latest point per key only (the runs table needs no curves), in the
same two shapes. Status changes go to both groups as
`{"type": "status", "run", "status", "progress"}`; only the latest status per window is sent.
Log lines go to the run group as `{"type": "log", "run", "text"}`.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterable

import numpy as np
from django.conf import settings

from apps.core import realtime
from apps.core.realtime import group_name
from apps.experiments.downsample import downsample
from apps.experiments.validation import Point

PER_POINT_LIMIT = 10
MAX_LIVE_POINTS_PER_KEY = 200


def window_seconds() -> float:
    return settings.EXPERIMENTS_LIVE_WINDOW_S


def iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_message(run) -> dict:
    """`{"type": "status", "run", "status", "progress"}` (+ `ended_at` once the run ended, and
    `"stale": true` while a running run's client is silent; absent means live)."""
    message = {"type": "status", "run": run.pk, "status": run.status, "progress": run.progress}
    if getattr(run, "stale", False):
        message["stale"] = True
    if run.ended_at is not None:
        message["ended_at"] = run.ended_at.isoformat()
    return message


def point_message(run_id: int, p: Point) -> dict:
    return {"type": "metric", "run": run_id, "key": p.key, "step": p.step, "value": p.value, "ts": iso_ms(p.timestamp)}


def coalesce(points: list[Point], per_key: int = MAX_LIVE_POINTS_PER_KEY) -> list[Point]:
    """Points grouped by key in step order, each key trimmed to `per_key` (shape kept)."""
    by_key: dict[str, list[Point]] = {}
    for p in points:
        by_key.setdefault(p.key, []).append(p)
    out: list[Point] = []
    for series in by_key.values():
        series.sort(key=lambda p: p.step)
        if len(series) > per_key:
            steps = np.fromiter((p.step for p in series), dtype=np.float64, count=len(series))
            values = np.fromiter((np.nan if p.value is None else p.value for p in series), np.float64, len(series))
            series = [series[i] for i in downsample(steps, values, per_key)]
        out.extend(series)
    return out


def latest_per_key(points: Iterable[Point]) -> list[Point]:
    latest: dict[str, Point] = {}
    for p in points:
        if p.key not in latest or p.step >= latest[p.key].step:
            latest[p.key] = p
    return list(latest.values())


def messages_for(run_id: int, points: list[Point], total: int) -> list[dict]:
    if not points:
        return []
    if len(points) <= PER_POINT_LIMIT and len({p.key for p in points}) == len(points):
        return [point_message(run_id, p) for p in points]
    return [
        {
            "type": "metrics",
            "run": run_id,
            "total": total,
            "points": [{"key": p.key, "step": p.step, "value": p.value, "ts": iso_ms(p.timestamp)} for p in points],
        }
    ]


class _Pending:
    __slots__ = ("experiment_id", "points", "status", "logs")

    def __init__(self, experiment_id: int):
        self.experiment_id = experiment_id
        self.points: list[Point] = []
        self.status: dict | None = None
        self.logs: list[str] = []


class LivePublisher:
    """Merges each run's updates over a window; the flush runs on the broadcaster's thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: dict[int, _Pending] = {}
        self.scheduled: set[int] = set()
        self.last_sent: dict[int, float] = {}
        self.pid = os.getpid()

    def publish(self, run_id: int, experiment_id: int, *, points=(), status=None, log_text=None) -> None:
        with self.lock:
            if self.pid != os.getpid():  # a forked worker process: the parent's windows are not ours
                self.pending, self.scheduled, self.last_sent, self.pid = {}, set(), {}, os.getpid()
            entry = self.pending.setdefault(run_id, _Pending(experiment_id))
            entry.points.extend(points)
            if status is not None:
                entry.status = status
            if log_text:
                entry.logs.append(log_text)
            if run_id in self.scheduled:
                return
            self.scheduled.add(run_id)
            delay = max(0.0, self.last_sent.get(run_id, -1e9) + window_seconds() - time.monotonic())
        realtime.call_later(delay, lambda: self._flush(run_id))

    def _flush(self, run_id: int) -> None:
        with self.lock:
            entry = self.pending.pop(run_id, None)
            self.scheduled.discard(run_id)
            now = time.monotonic()
            self.last_sent[run_id] = now
            if len(self.last_sent) > 10000:
                self.last_sent = {k: v for k, v in self.last_sent.items() if now - v < 60}
        if entry is None:
            return
        for group, message in outgoing(run_id, entry):
            realtime.send_now(group, message)


def outgoing(run_id: int, entry: _Pending) -> list[tuple[str, dict]]:
    """The (group, message) pairs one window's merged updates of a run become."""
    run_group, exp_group = group_name("run", run_id), group_name("experiment", entry.experiment_id)
    total = len(entry.points)
    messages = [(run_group, m) for m in messages_for(run_id, coalesce(entry.points), total)]
    messages += [(exp_group, m) for m in messages_for(run_id, latest_per_key(entry.points), total)]
    if entry.logs:
        messages.append((run_group, {"type": "log", "run": run_id, "text": "".join(entry.logs)}))
    if entry.status is not None:
        messages += [(run_group, entry.status), (exp_group, entry.status)]
    return messages


publisher = LivePublisher()
