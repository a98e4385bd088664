"""HTTP to the portal: one session, `Authorization: Bearer <token>`, retries, one error class.

Every call goes through `Transport.request` (JSON answers), `Transport.download` (a streamed body
written to a file, digest checked) or `Transport.upload` (a multipart body streamed from disk with
a progress callback). A refusal raises `PortalError` carrying the status and the portal's own
message and field errors, so that a script or the `portal` command can show what to fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import requests

RETRY_STATUSES = (429, 502, 503, 504)  # the server wrote nothing: safe to send again
CHUNK = 1 << 20

# progress(done, total): bytes so far and in all (total None when the server did not say).
Progress = Callable[[int, "int | None"], None]


class PortalError(RuntimeError):
    """The portal refused a request.

    `status` is the HTTP status, `detail` the portal's JSON (or text) answer as sent, `message` one
    line for people, `fields` the per-field errors of a 400 (`{"name": ["Use lowercase ..."]}`)."""

    def __init__(self, status: int, detail: Any, url: str):
        self.status, self.detail, self.url = status, detail, url
        self.message = error_message(detail) or f"HTTP {status}"
        self.fields = field_errors(detail)
        super().__init__(f"{status} from {url}: {detail}")


def field_errors(detail: Any) -> dict[str, Any]:
    """A 400's per-field errors, without the whole-body `detail` list."""
    if isinstance(detail, dict) and "error_code" not in detail:
        return {k: v for k, v in detail.items() if k != "detail"}
    return {}


def _flatten(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [m for item in value for m in _flatten(item)]
    if isinstance(value, dict):
        return [f"{k}: {m}" if not k.isdigit() else m for k, v in value.items() for m in _flatten(v)]
    return [] if value is None else [str(value)]


def error_message(detail: Any) -> str:
    """One line from any of the portal's error shapes: `{"detail": "..."}`, field errors (`{"name":
    ["..."], "detail": ["..."]}`) or MLflow's `{"error_code", "message"}`; text as it came."""
    if isinstance(detail, dict):
        if isinstance(detail.get("message"), str) and "error_code" in detail:
            return detail["message"]
        parts = _flatten(detail.get("detail")) if "detail" in detail else []
        parts += [f"{k}: {m}" for k, v in detail.items() if k != "detail" for m in _flatten(v)]
        return "; ".join(parts)
    if isinstance(detail, list):
        return "; ".join(_flatten(detail))
    return str(detail or "").strip()[:500]


def raise_for_status(response: requests.Response, url: str) -> None:
    """PortalError with the server's JSON (or text) detail for any 4xx/5xx answer."""
    if response.status_code >= 400:
        try:
            detail = response.json()
        except ValueError:
            detail = response.text[:500]
        raise PortalError(response.status_code, detail, url)


def _retry_after(response: requests.Response, fallback: float) -> float:
    """The server's `Retry-After` in seconds (capped at a minute), else the backoff delay."""
    value = (response.headers.get("Retry-After") or "").strip()
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        return fallback


class MultipartBody:
    """A multipart/form-data body read from disk as it is sent (never held in memory whole), with
    its exact length known up front, reporting progress as the request reads it."""

    def __init__(self, fields: dict[str, Any], files: dict[str, tuple[str, str]], progress: Progress | None = None):
        self.boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self._parts: list[bytes | tuple[str, int]] = []
        for name, value in fields.items():
            if value is None:
                continue
            head = f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            self._parts.append(head.encode() + str(value).encode() + b"\r\n")
        self.file_bytes = 0
        for name, (filename, path) in files.items():
            safe = os.path.basename(filename).replace('"', "_")
            head = (
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
            size = os.path.getsize(path)
            self.file_bytes += size
            self._parts += [head.encode(), (path, size), b"\r\n"]
        self._parts.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(p[1] if isinstance(p, tuple) else len(p) for p in self._parts)
        self.progress = progress
        self._sent_files = 0
        self._chunks: Iterator[bytes] = self._generate()
        self._pending = b""

    def __len__(self) -> int:
        return self.length

    def _generate(self) -> Iterator[bytes]:
        for part in self._parts:
            if isinstance(part, bytes):
                yield part
                continue
            path, _ = part
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    self._sent_files += len(chunk)
                    if self.progress:
                        self.progress(self._sent_files, self.file_bytes)
                    yield chunk

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        if size < 0:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk


class Transport:
    """The portal's base URL, a `requests` session carrying the token, timeouts and retries."""

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
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def url(self, path: str) -> str:
        return f"{self.base_url}/api/v1/{path.lstrip('/')}"

    def send(self, method: str, url: str, *, stream: bool = False, body_factory=None, **kwargs) -> requests.Response:
        """One HTTP exchange with retries on connection errors and on 429/502/503/504 (after the
        server's `Retry-After` where it sent one). `body_factory()` makes a fresh body per try."""
        delay = 0.5
        for attempt in range(self.retries + 1):
            for _, handle, *_ in (kwargs.get("files") or {}).values():
                handle.seek(0)
            if body_factory is not None:
                body = body_factory()
                kwargs["data"] = body
                kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": body.content_type}
            try:
                response = self.session.request(method, url, stream=stream, timeout=self.timeout, **kwargs)
            except requests.ConnectionError:
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                wait = _retry_after(response, delay)
                response.close()
                time.sleep(wait)
                delay *= 2
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

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
        """One API call; `files` ({field: (name, open binary file)}) are rewound per try."""
        url = self.url(path)
        response = self.send(method, url, json=json, params=params, data=data, files=files)
        raise_for_status(response, url)
        return response.json() if response.content else None

    def _all_pages(self, path: str, params: dict) -> list[dict]:
        """Follow a paged list to its end (`next` links), or return an unpaged array as it is."""
        page = self.request("GET", path, params=params)
        if isinstance(page, list):
            return page
        results = list(page["results"])
        number = 1
        while page.get("next"):
            number += 1
            page = self.request("GET", path, params={**params, "page": number})
            results += page["results"]
        return results

    def upload(
        self,
        method: str,
        path: str,
        *,
        fields: dict[str, Any],
        files: dict[str, str | os.PathLike],
        progress: Progress | None = None,
    ) -> Any:
        """A multipart request whose files ({field: local path}) stream from disk; `progress(done,
        total)` follows the file bytes sent. Non-string field values go as JSON text."""
        import json as _json

        encoded = {k: v if isinstance(v, str) else _json.dumps(v) for k, v in fields.items() if v is not None}
        named = {k: (os.path.basename(os.fspath(p)), os.fspath(p)) for k, p in files.items()}
        url = self.url(path)
        response = self.send(method, url, body_factory=lambda: MultipartBody(encoded, named, progress))
        raise_for_status(response, url)
        return response.json() if response.content else None

    def download(
        self,
        path: str,
        destination: str | os.PathLike | BinaryIO,
        *,
        params: dict | None = None,
        progress: Progress | None = None,
        verify: bool = True,
    ) -> dict:
        """Stream `path` into `destination` (a file path, written whole or not at all, or an open
        binary file). Checks `X-Content-SHA256` when the portal sends it (PortalError otherwise).
        Returns `{"path", "size", "sha256", "headers"}`."""
        url = path if path.startswith(("http://", "https://")) else self.url(path)
        with self.send("GET", url, params=params, stream=True) as response:
            raise_for_status(response, url)
            total = int(response.headers["Content-Length"]) if response.headers.get("Content-Length") else None
            digest, done = hashlib.sha256(), 0
            if isinstance(destination, str | os.PathLike):
                target = os.fspath(destination)
                folder = os.path.dirname(os.path.abspath(target))
                handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".portal-", delete=False)  # noqa: SIM115
            else:
                target, handle = None, destination
            try:
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    handle.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                expected = response.headers.get("X-Content-SHA256")
                if verify and expected and digest.hexdigest() != expected.lower():
                    raise PortalError(
                        response.status_code,
                        {"detail": "The download was cut short or corrupted (its SHA-256 does not match)."},
                        url,
                    )
                if target is not None:
                    handle.close()
                    os.replace(handle.name, target)
            except BaseException:
                if target is not None:
                    handle.close()
                    with contextlib.suppress(OSError):
                        os.unlink(handle.name)
                raise
            return {"path": target, "size": done, "sha256": digest.hexdigest(), "headers": dict(response.headers)}
