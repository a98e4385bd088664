"""The client: a thin, buffered wrapper over the portal's REST API (see API.md)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import math
import os
import subprocess
import threading
import time
from typing import Any
from urllib.parse import quote

import requests

MAX_POINTS_PER_CALL = 1000
MAX_PARAMS_PER_CALL = 100
MAX_TAGS_PER_CALL = 100
MAX_LOG_BYTES_PER_CALL = 64 * 1024
RETRY_STATUSES = (429, 502, 503, 504)  # the server wrote nothing: safe to send again


class PortalError(RuntimeError):
    """The portal refused a request; `status` and `detail` say why (the message says what to fix)."""

    def __init__(self, status: int, detail: Any, url: str):
        self.status, self.detail, self.url = status, detail, url
        super().__init__(f"{status} from {url}: {detail}")


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


class PortalClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        session: requests.Session | None = None,
    ):
        base_url = base_url or os.environ.get("PORTAL_URL")
        token = token or os.environ.get("PORTAL_TOKEN")
        if not base_url or not token:
            raise ValueError(
                "Give base_url and token (or set PORTAL_URL and PORTAL_TOKEN); create a token on your profile page."
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})

    # --- HTTP -----------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        data: dict | None = None,
        files: dict | None = None,
    ) -> Any:
        """One API call with retries; `files` ({field: (name, open binary file)}) are rewound per try."""
        url = f"{self.base_url}/api/v1/{path.lstrip('/')}"
        delay = 0.5
        for attempt in range(self.retries + 1):
            for _, handle, *_ in (files or {}).values():
                handle.seek(0)
            try:
                response = self.session.request(
                    method, url, json=json, params=params, data=data, files=files, timeout=self.timeout
                )
            except requests.ConnectionError:
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                wait = response.headers.get("Retry-After")
                time.sleep(float(wait) if wait and wait.replace(".", "", 1).isdigit() else delay)
                delay *= 2
                continue
            _raise_for_status(response, url)
            return response.json() if response.content else None
        raise AssertionError("unreachable")  # pragma: no cover

    # --- experiments and runs ---------------------------------------------------------------------
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

    def log_artifact(self, run_id: int, local_path: str | os.PathLike, path: str | None = None) -> dict:
        """Upload a file as the run's artifact at `path` (default: the file's name), replacing any
        artifact already there. The portal stores it encrypted; returns its path, size and digest."""
        local_path = os.fspath(local_path)
        name = os.path.basename(local_path)
        with open(local_path, "rb") as handle:
            return self.request(
                "POST",
                f"runs/{run_id}/artifacts",
                data={"path": path or name},
                files={"file": (name, handle, "application/octet-stream")},
            )

    def list_artifacts(self, run_id: int) -> list[dict]:
        return self.request("GET", f"runs/{run_id}/artifacts", params={"page_size": 500})["results"]

    def download_artifact(self, run_id: int, path: str, local_path: str | os.PathLike) -> str:
        """Save the run's artifact at `path` to `local_path` (streamed, digest checked); returns it."""
        url = f"{self.base_url}/api/v1/runs/{run_id}/artifacts/{quote(path)}"
        local_path = os.fspath(local_path)
        with self.session.get(url, stream=True, timeout=self.timeout) as response:
            _raise_for_status(response, url)
            digest = hashlib.sha256()
            try:
                with open(local_path, "wb") as out:
                    for chunk in response.iter_content(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                expected = response.headers.get("X-Content-SHA256")
                if expected and digest.hexdigest() != expected:
                    raise PortalError(response.status_code, "the download was cut short or corrupted", url)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(local_path)
                raise
        return local_path

    # --- feature store ---------------------------------------------------------------------------
    def training_set_data(self, training_set_id: int, *, as_: str = "arrow"):
        """The rows of a training set as a pyarrow Table (``as_="arrow"``) or a pandas DataFrame
        (``as_="pandas"``); needs pyarrow (and pandas for a DataFrame).

        The portal checks the stored file's digest before sending any of it and masks PII columns
        (``***``) unless you may see the feature view's PII; their names are in the table's schema
        metadata (``b"portal.masked_columns"``) or the DataFrame's ``attrs["masked_columns"]``."""
        if as_ not in ("arrow", "pandas"):
            raise ValueError('as_ is "arrow" or "pandas".')
        import pyarrow.parquet as pq  # optional dependency: only this call needs it

        if as_ == "pandas" and importlib.util.find_spec("pandas") is None:
            raise ImportError('as_="pandas" needs pandas: pip install pandas (or use as_="arrow").')

        url = f"{self.base_url}/api/v1/training-sets/{int(training_set_id)}/data"
        buffer = io.BytesIO()
        with self.session.get(url, params={"format": "parquet"}, stream=True, timeout=self.timeout) as response:
            _raise_for_status(response, url)
            masked = [c for c in response.headers.get("X-Masked-Columns", "").split(",") if c]
            for chunk in response.iter_content(1 << 20):
                buffer.write(chunk)
        buffer.seek(0)
        table = pq.read_table(buffer)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"portal.masked_columns": ",".join(masked)}
        )
        if as_ == "arrow":
            return table
        frame = table.to_pandas()
        frame.attrs["masked_columns"] = masked
        return frame

    def get_metric_history(
        self, run_id: int, key: str, *, max_points: int | None = None, method: str = "minmax"
    ) -> dict:
        params: dict[str, Any] = {"method": method}
        if max_points:
            params["max_points"] = max_points
        return self.request("GET", f"runs/{run_id}/metrics/{key}", params=params)


class ActiveRun:
    """A run being logged: metrics are buffered and sent in batches of up to 1,000 points."""

    def __init__(self, client: PortalClient, run: dict, *, flush_every: float = 1.0):
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


def _raise_for_status(response, url: str) -> None:
    """PortalError with the server's JSON (or text) detail for any 4xx/5xx answer."""
    if response.status_code >= 400:
        try:
            detail = response.json()
        except ValueError:
            detail = response.text[:500]
        raise PortalError(response.status_code, detail, url)
