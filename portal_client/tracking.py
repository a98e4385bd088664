"""Tracking: experiments, runs, metrics, params, tags, logs and artifacts (the client's first calls,
kept as they were), and `ActiveRun`, a run being logged with buffered metrics."""

from __future__ import annotations

import math
import os
import subprocess
import threading
import time
from typing import Any
from urllib.parse import quote

MAX_POINTS_PER_CALL = 1000
MAX_PARAMS_PER_CALL = 100
MAX_TAGS_PER_CALL = 100
MAX_LOG_BYTES_PER_CALL = 64 * 1024


def _json_value(value: float) -> float | str:
    """JSON has no NaN/Infinity: send those as the strings the portal accepts."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _log_pieces(text: str) -> list[str]:
    """Split text into pieces of at most MAX_LOG_BYTES_PER_CALL UTF-8 bytes (never mid-character)."""
    if len(text.encode("utf-8", "surrogatepass")) <= MAX_LOG_BYTES_PER_CALL:
        return [text] if text else []
    pieces, current, size = [], [], 0
    for char in text:
        n = len(char.encode("utf-8", "surrogatepass"))
        if size + n > MAX_LOG_BYTES_PER_CALL:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += n
    if current:
        pieces.append("".join(current))
    return pieces


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False)  # noqa: S607
        return out.stdout.strip()[:40] if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


class TrackingMixin:
    """Experiments and runs (mixed into PortalClient, which supplies `request` and `download`)."""

    def get_experiment(self, name: str) -> dict | None:
        results = self.request("GET", "experiments/", params={"name": name})["results"]
        return results[0] if results else None

    def get_or_create_experiment(self, name: str, *, description: str = "", team: str | None = None) -> dict:
        found = self.get_experiment(name)
        if found is not None:
            return found
        body = {"name": name, "description": description, "team": team}
        return self.request("POST", "experiments/", json=body)

    def create_run(
        self,
        experiment: str | int,
        *,
        name: str,
        params: dict | None = None,
        tags: dict | None = None,
        code_version: str | None = None,
        notes: str = "",
    ) -> dict:
        experiment_id = experiment if isinstance(experiment, int) else self.get_or_create_experiment(experiment)["id"]
        body = {
            "experiment": experiment_id,
            "name": name,
            "source": "script",
            "params": {k: str(v) for k, v in (params or {}).items()},
            "tags": {k: str(v) for k, v in (tags or {}).items()},
            "code_version": _git_commit() if code_version is None else code_version,
            "notes": notes,
        }
        return self.request("POST", "runs/", json=body)

    def start_run(self, experiment: str | int, *, name: str, **kwargs) -> ActiveRun:
        return ActiveRun(self, self.create_run(experiment, name=name, **kwargs))

    def log_batch(self, run_id: int, *, metrics=(), params: dict | None = None, tags: dict | None = None) -> dict:
        """One call: at most 1,000 points, 100 params, 100 tags (ActiveRun splits for you)."""
        body: dict[str, Any] = {}
        if metrics:
            body["metrics"] = [
                {
                    "key": m["key"],
                    "value": _json_value(m["value"]),
                    "step": int(m.get("step", 0)),
                    **({"timestamp": int(m["timestamp"])} if m.get("timestamp") is not None else {}),
                }
                for m in metrics
            ]
        if params:
            body["params"] = {k: str(v) for k, v in params.items()}
        if tags:
            body["tags"] = {k: str(v) for k, v in tags.items()}
        return self.request("POST", f"runs/{run_id}/log-batch", json=body)

    def set_status(self, run_id: int, status: str | None = None, progress: float | None = None) -> dict:
        body = {k: v for k, v in {"status": status, "progress": progress}.items() if v is not None}
        return self.request("PATCH", f"runs/{run_id}/", json=body)

    def get_run(self, run_id: int) -> dict:
        return self.request("GET", f"runs/{run_id}/")

    def search_runs(
        self, experiment_id: int, *, filter: str = "", order_by: str = "", page_size: int = 50
    ) -> list[dict]:
        params = {"experiment": experiment_id, "filter": filter, "order_by": order_by, "page_size": page_size}
        return self.request("GET", "runs/", params=params)["results"]

    def append_log(self, run_id: int, text: str) -> None:
        """Append output to the run's log tail (sent in pieces of at most 64 KiB)."""
        for piece in _log_pieces(text):
            self.request("POST", f"runs/{run_id}/log", json={"text": piece})

    def log_artifact(
        self, run_id: int, local_path: str | os.PathLike, path: str | None = None, *, progress=None
    ) -> dict:
        """Upload a file as the run's artifact at `path` (default: the file's name), replacing any
        artifact already there; it streams from disk (`progress(sent, total)`). The portal stores it
        encrypted; returns its path, size and digest."""
        local_path = os.fspath(local_path)
        fields = {"path": path or os.path.basename(local_path)}
        return self.upload(
            "POST", f"runs/{int(run_id)}/artifacts", fields=fields, files={"file": local_path}, progress=progress
        )

    def list_artifacts(self, run_id: int) -> list[dict]:
        return self.request("GET", f"runs/{run_id}/artifacts", params={"page_size": 500})["results"]

    def download_artifact(self, run_id: int, path: str, local_path: str | os.PathLike) -> str:
        """Save the run's artifact at `path` to `local_path` (streamed, digest checked); returns it."""
        local_path = os.fspath(local_path)
        self.download(f"runs/{int(run_id)}/artifacts/{quote(path)}", local_path)
        return local_path

    def get_metric_history(
        self, run_id: int, key: str, *, max_points: int | None = None, method: str = "minmax"
    ) -> dict:
        params: dict[str, Any] = {"method": method}
        if max_points:
            params["max_points"] = max_points
        return self.request("GET", f"runs/{run_id}/metrics/{key}", params=params)

    def get_run_log(self, run_id: int) -> str:
        """The run's log tail: the last 64 KiB of its output."""
        return self.request("GET", f"runs/{int(run_id)}/log")["text"]


class ActiveRun:
    """A run being logged: metrics are buffered and sent in batches of up to 1,000 points."""

    def __init__(self, client, run: dict, *, flush_every: float = 1.0):
        self.client = client
        self.info = run
        self.id: int = run["id"]
        self.flush_every = flush_every
        self._points: list[dict] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        with self._lock:
            self._points.append({"key": key, "value": value, "step": step, "timestamp": int(time.time() * 1000)})
            due = len(self._points) >= MAX_POINTS_PER_CALL or time.monotonic() - self._last_flush >= self.flush_every
        if due:
            self.flush()

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_params(self, params: dict[str, Any]) -> None:
        items = list(params.items())
        for i in range(0, len(items), MAX_PARAMS_PER_CALL):
            self.client.log_batch(self.id, params=dict(items[i : i + MAX_PARAMS_PER_CALL]))

    def set_tags(self, tags: dict[str, Any]) -> None:
        items = list(tags.items())
        for i in range(0, len(items), MAX_TAGS_PER_CALL):
            self.client.log_batch(self.id, tags=dict(items[i : i + MAX_TAGS_PER_CALL]))

    def set_progress(self, progress: float) -> None:
        self.client.set_status(self.id, progress=max(0.0, min(1.0, float(progress))))

    def log_artifact(self, local_path: str | os.PathLike, path: str | None = None) -> dict:
        return self.client.log_artifact(self.id, local_path, path)

    def append_log(self, text: str) -> None:
        self.client.append_log(self.id, text)

    def flush(self) -> None:
        with self._lock:
            points, self._points = self._points, []
            self._last_flush = time.monotonic()
        for i in range(0, len(points), MAX_POINTS_PER_CALL):
            self.client.log_batch(self.id, metrics=points[i : i + MAX_POINTS_PER_CALL])

    def finish(self, status: str = "finished") -> dict:
        self.flush()
        return self.client.set_status(self.id, status=status)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is KeyboardInterrupt:
            self.finish("killed")
        else:
            self.finish("failed" if exc_type else "finished")
