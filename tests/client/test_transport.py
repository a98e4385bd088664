"""portal_client's transport without a server: a requests adapter plays the portal, so retries,
error messages, streamed multipart bodies and digest checks are exercised byte for byte."""

from __future__ import annotations

import hashlib
import io
import json
import time

import pytest
import requests
from requests.adapters import BaseAdapter

from portal_client import PortalClient, PortalError
from portal_client.config import ConfigError, load_config, resolve, save_config
from portal_client.transport import MultipartBody, error_message


class Scripted(BaseAdapter):
    """Answers each request with the next (status, headers, body); records what was sent."""

    def __init__(self, answers):
        super().__init__()
        self.answers, self.sent = list(answers), []

    def send(self, request, **kwargs):
        body = request.body
        if hasattr(body, "read"):
            body = b"".join(iter(lambda: body.read(8192), b""))
        self.sent.append((request.method, request.url, dict(request.headers), body, time.monotonic()))
        status, headers, content = self.answers.pop(0)
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response.headers.update(headers)
        response.raw = io.BytesIO(content if isinstance(content, bytes) else json.dumps(content).encode())
        return response

    def close(self):
        pass


def client_with(*answers, retries=2) -> tuple[PortalClient, Scripted]:
    adapter = Scripted(answers)
    session = requests.Session()
    session.mount("http://portal.test", adapter)
    return PortalClient("http://portal.test/", "ptk_x_y", session=session, retries=retries), adapter


def test_bearer_header_and_retry_after_on_429():
    client, adapter = client_with(
        (429, {"Retry-After": "0.3"}, {"detail": "Request was throttled."}), (200, {}, {"username": "ann"})
    )
    assert client.me() == {"username": "ann"}
    (_, url, headers, _, first), (_, _, _, _, second) = adapter.sent
    assert url == "http://portal.test/api/v1/me" and headers["Authorization"] == "Bearer ptk_x_y"
    assert second - first >= 0.3  # waited as the portal asked


def test_errors_carry_status_message_and_field_errors():
    client, _ = client_with(
        (400, {}, {"name": ["Use lowercase letters."], "detail": ["Give a file."]}),
        (409, {}, {"detail": "Alias production is protected: use POST /api/v1/promotions/."}),
        (429, {"Retry-After": "0"}, {"detail": "slow down"}),
        retries=0,
    )
    with pytest.raises(PortalError) as info:
        client.create_model("Bad Name")
    assert info.value.status == 400 and info.value.fields == {"name": ["Use lowercase letters."]}
    assert info.value.message == "Give a file.; name: Use lowercase letters."
    with pytest.raises(PortalError) as info:
        client.set_alias("m", "production", 2)
    assert info.value.status == 409 and "POST /api/v1/promotions/" in info.value.message
    with pytest.raises(PortalError) as info:  # retries=0: a 429 is raised, not retried
        client.me()
    assert info.value.status == 429
    assert error_message({"error_code": "PERMISSION_DENIED", "message": "no"}) == "no"
    assert error_message("<html>Bad gateway</html>") == "<html>Bad gateway</html>"


def test_multipart_body_streams_files_with_exact_length_and_progress(tmp_path):
    data = bytes(range(256)) * 9000  # ~2.3 MB: several chunks
    (tmp_path / "m.onnx").write_bytes(data)
    seen = []
    body = MultipartBody(
        {"metrics": '{"auc": 0.9}'},
        {"artifact": ("m.onnx", str(tmp_path / "m.onnx"))},
        lambda d, t: seen.append((d, t)),
    )
    encoded = b"".join(iter(body))
    assert len(encoded) == len(body) and data in encoded and b'name="metrics"\r\n\r\n{"auc": 0.9}' in encoded
    assert seen[-1] == (len(data), len(data)) and len(seen) >= 3
    client, adapter = client_with((201, {}, {"version": 1}))
    progress = []
    assert client.upload("POST", "models/m/versions/", fields={"tags": ["a"]}, files={"artifact": tmp_path / "m.onnx"},
                         progress=lambda d, t: progress.append(d)) == {"version": 1}  # fmt: skip
    _, _, headers, sent, _ = adapter.sent[0]
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(headers["Content-Length"]) == len(sent) and data in sent and progress[-1] == len(data)


def test_download_checks_the_digest_and_leaves_no_file_when_it_differs(tmp_path):
    payload = b"onnx bytes" * 1000
    good = hashlib.sha256(payload).hexdigest()
    client, _ = client_with(
        (200, {"X-Content-SHA256": good, "Content-Length": str(len(payload))}, payload),
        (200, {"X-Content-SHA256": "0" * 64}, payload),
    )
    done = []
    result = client.download_version("m", 1, tmp_path / "ok.onnx", progress=lambda d, t: done.append((d, t)))
    assert (tmp_path / "ok.onnx").read_bytes() == payload and result["sha256"] == good
    assert done[-1] == (len(payload), len(payload))
    with pytest.raises(PortalError, match="corrupted"):
        client.download_version("m", 1, tmp_path / "bad.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.onnx"]  # no partial or temporary file


def test_config_file_is_private_and_flags_beat_environment_beat_file(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "config.toml"
    monkeypatch.setenv("PORTAL_CONFIG", str(path))
    monkeypatch.delenv("PORTAL_URL", raising=False)
    monkeypatch.delenv("PORTAL_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="portal login"):
        resolve(None, None)
    save_config("http://file.test", 'ptk_"file"')  # pragma: allowlist secret
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert load_config() == {"url": "http://file.test", "token": 'ptk_"file"'}  # pragma: allowlist secret
    assert resolve(None, None) == ("http://file.test", 'ptk_"file"')
    monkeypatch.setenv("PORTAL_TOKEN", "ptk_env")  # pragma: allowlist secret
    assert resolve(None, None) == ("http://file.test", "ptk_env")
    assert resolve("http://flag.test", "ptk_flag") == ("http://flag.test", "ptk_flag")
    path.chmod(0o644)
    monkeypatch.delenv("PORTAL_TOKEN")
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve(None, None)
    json_path = tmp_path / "config.json"
    monkeypatch.setenv("PORTAL_CONFIG", str(json_path))
    save_config("http://json.test", "ptk_json")  # pragma: allowlist secret
    assert json.loads(json_path.read_text()) == {"url": "http://json.test", "token": "ptk_json"}
