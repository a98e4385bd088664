"""Run artifacts and log tail over the API: encrypted uploads, listing, streamed downloads,
replacement, limits, permissions, nothing half-written; and the portal_client methods."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.core import vault
from apps.core.models import AuditEntry, VaultBlob
from apps.core.permissions import share
from apps.experiments import services
from apps.experiments.models import Run, RunArtifact
from portal_client import PortalClient, PortalError
from tests.conftest import api_client_for
from tests.experiments.factories import experiment, run
from tests.permissions import StrangerDeniedMixin

pytestmark = pytest.mark.django_db


def _files() -> set[Path]:
    root = Path(vault.storage().location)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _url(r, path: str = "") -> str:
    return f"/api/v1/runs/{r.pk}/artifacts" + (f"/{path}" if path else "")


def upload(client, r, content: bytes, name: str = "model.onnx", **fields):
    payload = {"file": SimpleUploadedFile(name, content, "application/octet-stream"), **fields}
    return client.post(_url(r), payload, format="multipart")


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def owned_run(owner):
    return run(experiment(owner), owner)


def _stored(r, owner, path="model.onnx", content=b"weights"):
    return services.run_artifact_upload(run=r, actor=owner, src=io.BytesIO(content), size=len(content), path=path)


class TestArtifactStranger(StrangerDeniedMixin):
    list_url = "/api/v1/runs/"

    def make_object(self, owner):
        r = run(experiment(owner), owner)
        _stored(r, owner, path="plots/loss.png")
        return r

    def detail_url(self, obj):
        return _url(obj, "plots/loss.png")

    def extra_urls(self, obj):
        return [_url(obj), _url(obj, "missing.bin")]

    def test_stranger_cannot_write(self, stranger, target):
        client = api_client_for(stranger)
        before = _files()
        assert upload(client, target, b"evil", path="plots/loss.png").status_code == 404
        assert upload(client, target, b"evil", path="new.bin").status_code == 404
        assert client.post(f"/api/v1/runs/{target.pk}/log", {"text": "evil"}, format="json").status_code == 404
        target.refresh_from_db()
        assert target.log_tail == "" and list(target.artifacts.values_list("path", flat=True)) == ["plots/loss.png"]
        assert _files() == before and VaultBlob.objects.count() == 1

    def test_unknown_run_is_404(self, owner):
        client = api_client_for(owner)
        for url in ("/api/v1/runs/999999/artifacts", "/api/v1/runs/999999/artifacts/a.bin"):
            assert client.get(url).status_code == 404
        assert client.post("/api/v1/runs/999999/log", {"text": "x"}, format="json").status_code == 404


def test_upload_list_download_round_trip(api_owner, owner, owned_run):
    content = os.urandom(2_500_000)  # several vault chunks
    r = upload(api_owner, owned_run, content, name="model.onnx", path="export/model.onnx")
    assert r.status_code == 201, r.content
    body = r.json()
    sha = hashlib.sha256(content).hexdigest()
    assert body["path"] == "export/model.onnx" and body["size"] == len(content)
    assert body["sha256"] == sha and body["digest"] == f"sha256:{sha}"
    assert body["download_url"].endswith(f"/api/v1/runs/{owned_run.pk}/artifacts/export/model.onnx")
    stored = RunArtifact.objects.get(run=owned_run)
    assert stored.blob.purpose == "experiments.artifact" and stored.uri == ""
    assert content[:64] not in Path(vault.storage().path(stored.blob.storage_key)).read_bytes()  # encrypted

    assert upload(api_owner, owned_run, b"a,b\n1,2\n", name="metrics.csv").status_code == 201  # path = file name
    listing = api_owner.get(_url(owned_run)).json()
    assert [a["path"] for a in listing["results"]] == ["export/model.onnx", "metrics.csv"]

    r = api_owner.get(_url(owned_run, "export/model.onnx"))
    assert r.status_code == 200 and r["Content-Length"] == str(len(content)) and r["X-Content-SHA256"] == sha
    assert 'filename="model.onnx"' in r["Content-Disposition"]
    assert _body(r) == content
    events = AuditEntry.objects.filter(actor=owner, additional_data__event__in=["artifact.upload", "artifact.download"])
    assert sorted(e.additional_data["event"] for e in events) == ["artifact.download", *["artifact.upload"] * 2]
    download = next(e for e in events if e.additional_data["event"] == "artifact.download")
    assert download.additional_data["path"] == "export/model.onnx" and download.additional_data["sha256"] == sha

    assert api_owner.get(_url(owned_run, "nope.bin")).status_code == 404


def test_reupload_replaces_row_and_deletes_old_blob(api_owner, owned_run, django_capture_on_commit_callbacks):
    assert upload(api_owner, owned_run, b"first version", path="ckpt/last.pt").status_code == 201
    old = RunArtifact.objects.get(run=owned_run).blob
    old_file = Path(vault.storage().path(old.storage_key))
    assert old_file.exists()
    with django_capture_on_commit_callbacks(execute=True):
        r = upload(api_owner, owned_run, b"second, longer version", path="ckpt/last.pt")
    assert r.status_code == 201
    row = RunArtifact.objects.get(run=owned_run)
    assert row.size == len(b"second, longer version") and row.blob_id != old.pk
    assert not VaultBlob.objects.filter(pk=old.pk).exists() and not old_file.exists()
    assert VaultBlob.objects.count() == 1
    assert _body(api_owner.get(_url(owned_run, "ckpt/last.pt"))) == b"second, longer version"


@pytest.mark.parametrize(
    ("size", "message"),
    [(5000, "The file is 5,000 bytes"), (2 * 1024 * 1024, "The upload is")],  # refused before reading the body
)
def test_too_large_is_413_and_leaves_nothing(api_owner, owned_run, settings, size, message):
    settings.EXPERIMENTS_MAX_ARTIFACT_BYTES = 1000
    before = _files()
    r = upload(api_owner, owned_run, b"x" * size)
    assert r.status_code == 413 and message in r.json()["detail"] and "1,000" in r.json()["detail"]
    assert not RunArtifact.objects.exists() and not VaultBlob.objects.exists() and _files() == before
    assert upload(api_owner, owned_run, b"x" * 1000).status_code == 201


@pytest.mark.parametrize(
    "path", ["../escape", "a/../../b", "/etc/passwd", "a//b", "dir/", "./a", "bad\x01name", "p" * 501]
)
def test_bad_path_is_400(api_owner, owned_run, path):
    before = _files()
    r = upload(api_owner, owned_run, b"data", path=path)
    assert r.status_code == 400 and "relative artifact path" in r.json()["path"][0]
    assert not RunArtifact.objects.exists() and _files() == before


def test_upload_without_file_is_400(api_owner, owned_run):
    r = api_owner.post(_url(owned_run), {"path": "a.bin"}, format="multipart")
    assert r.status_code == 400 and "file" in r.json()
    assert api_owner.post(_url(owned_run), {"file": "x"}, format="json").status_code == 415


def test_failed_upload_leaves_no_row_and_no_file(api_owner, owned_run, monkeypatch):
    assert upload(api_owner, owned_run, b"good", path="keep.bin").status_code == 201
    before, blobs = _files(), VaultBlob.objects.count()

    def boom(**kwargs):
        raise RuntimeError("database went away")

    # fails after the blob was written and recorded
    monkeypatch.setattr("apps.experiments.services.artifacts.audit_event", boom)
    for path in ("new.bin", "keep.bin"):  # a new path, and a replacement
        with pytest.raises(RuntimeError):
            upload(api_owner, owned_run, b"doomed", path=path)
    assert _files() == before and VaultBlob.objects.count() == blobs
    assert list(RunArtifact.objects.filter(run=owned_run).values_list("path", flat=True)) == ["keep.bin"]
    monkeypatch.undo()
    assert _body(api_owner.get(_url(owned_run, "keep.bin"))) == b"good"


def test_tampered_artifact_is_refused_not_sent(api_owner, owner, owned_run):
    blob = _stored(owned_run, owner, path="model.onnx", content=b"weights" * 100).blob
    stored = Path(vault.storage().path(blob.storage_key))
    data = bytearray(stored.read_bytes())
    data[-20] ^= 0xFF
    stored.write_bytes(bytes(data))
    r = api_owner.get(_url(owned_run, "model.onnx"))
    assert r.status_code == 500 and "integrity check" in r.json()["detail"]
    assert AuditEntry.objects.filter(additional_data__event="artifact.integrity_error").count() == 1


def test_viewer_collaborator_reads_but_cannot_write(owner, collaborator, owned_run):
    _stored(owned_run, owner, path="model.onnx", content=b"weights")
    share(owned_run.experiment, role="viewer", user=collaborator)
    client = api_client_for(collaborator)
    assert client.get(_url(owned_run)).json()["results"][0]["path"] == "model.onnx"
    assert _body(client.get(_url(owned_run, "model.onnx"))) == b"weights"
    before = _files()
    assert upload(client, owned_run, b"mine", path="model.onnx").status_code == 403
    assert upload(client, owned_run, b"mine", path="other.bin").status_code == 403
    assert client.post(f"/api/v1/runs/{owned_run.pk}/log", {"text": "hi"}, format="json").status_code == 403
    assert _files() == before and RunArtifact.objects.get(run=owned_run).size == len(b"weights")
    owned_run.refresh_from_db()
    assert owned_run.log_tail == ""


def test_outside_artifact_is_listed_but_not_downloadable(
    api_owner, owner, owned_run, django_capture_on_commit_callbacks
):
    services.run_artifact_add(
        run=owned_run, actor=owner, path="big/data.parquet", size=10, uri="s3://bucket/data.parquet"
    )
    item = api_owner.get(_url(owned_run)).json()["results"][0]
    assert item["uri"] == "s3://bucket/data.parquet" and item["download_url"] is None and item["sha256"] is None
    r = api_owner.get(_url(owned_run, "big/data.parquet"))
    assert r.status_code == 404 and "outside the portal" in r.json()["detail"]
    # recording an outside location over a stored file drops the stored file
    blob = _stored(owned_run, owner, path="model.onnx").blob
    with django_capture_on_commit_callbacks(execute=True):
        services.run_artifact_add(run=owned_run, actor=owner, path="model.onnx", size=7, uri="s3://bucket/model.onnx")
    assert not VaultBlob.objects.filter(pk=blob.pk).exists()


def test_deleting_a_run_deletes_its_blobs(owner, owned_run, django_capture_on_commit_callbacks):
    files = _files()
    _stored(owned_run, owner, path="a.bin")
    _stored(owned_run, owner, path="b/c.bin")
    assert len(_files() - files) == 2
    with django_capture_on_commit_callbacks(execute=True):
        Run.objects.get(pk=owned_run.pk).delete()
    assert not VaultBlob.objects.exists() and _files() == files


def test_log_append_and_tail(api_owner, owned_run):
    url = f"/api/v1/runs/{owned_run.pk}/log"
    assert api_owner.post(url, {"text": "epoch 1 done\n"}, format="json").status_code == 204
    assert api_owner.post(url, {"text": "epoch 2 done\x00\n"}, format="json").status_code == 204
    owned_run.refresh_from_db()
    assert owned_run.log_tail == "epoch 1 done\nepoch 2 done\n"
    for payload, field in [
        ({"text": ""}, "text"),
        ({"text": 5}, "text"),
        ({"text": None}, "text"),
        ({}, "text"),
        ({"text": "a", "level": "info"}, "level"),
        (["text"], "detail"),
        ({"text": "é" * (33 * 1024)}, "text"),  # 66 KiB of UTF-8
    ]:
        r = api_owner.post(url, payload, format="json")
        assert r.status_code == 400 and r.json()[field], payload
    # JSON bodies holding a lone surrogate are refused by the API's parser (one rule, issue #12);
    # the log service still replaces them for callers that pass text directly (a worker's output).
    r = api_owner.post(url, '{"text": "lone \\ud800 surrogate\\n"}', content_type="application/json")
    assert r.status_code == 400
    services.run_append_log(run=owned_run, actor=owned_run.owner, text="lone \ud800 surrogate\n")
    owned_run.refresh_from_db()
    assert owned_run.log_tail.endswith("lone ? surrogate\n")
    assert api_owner.post(url, {"text": "x" * (64 * 1024)}, format="json").status_code == 204
    r = api_owner.post(url, "{not json", content_type="application/json")
    assert r.status_code == 400
    owned_run.refresh_from_db()
    assert owned_run.log_tail.endswith("x" * 100) and len(owned_run.log_tail) == services.LOG_TAIL_CHARS


def test_run_page_links_stored_artifacts(client, owner, owned_run):
    _stored(owned_run, owner, path="plots/loss curve.png")
    services.run_artifact_add(run=owned_run, actor=owner, path="data.parquet", size=1, uri="s3://b/data.parquet")
    client.force_login(owner)
    page = client.get(f"/runs/{owned_run.pk}/").content.decode()
    assert f'href="/api/v1/runs/{owned_run.pk}/artifacts/plots/loss%20curve.png"' in page
    assert "s3://b/data.parquet" in page and "/artifacts/data.parquet" not in page
    r = client.get(f"/api/v1/runs/{owned_run.pk}/artifacts/plots/loss%20curve.png")  # the session can download
    assert r.status_code == 200 and _body(r) == b"weights"


# --- portal_client, through the whole Django stack (no server process) ------------------------
class DjangoAdapter(requests.adapters.BaseAdapter):
    """Sends requests' PreparedRequests to Django's test client in this thread and transaction."""

    def __init__(self):
        super().__init__()
        self.client = Client()

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        url = urlsplit(request.url)
        body = request.body or b""
        if hasattr(body, "read"):  # the client streams uploads from disk (portal_client MultipartBody)
            body = body.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-type", "content-length")}
        reply = self.client.generic(
            request.method,
            url.path + (f"?{url.query}" if url.query else ""),
            data=body.encode() if isinstance(body, str) else body,
            content_type=request.headers.get("Content-Type", "application/octet-stream"),
            headers=headers,
        )
        response = requests.Response()
        response.status_code = reply.status_code
        response.headers.update(dict(reply.items()))
        response._content = _body(reply) if reply.streaming else reply.content
        response._content_consumed = True
        response.url, response.request, response.encoding = request.url, request, "utf-8"
        return response

    def close(self):
        pass


@pytest.fixture
def portal(owner):
    from apps.accounts.services import token_create

    _, key = token_create(user=owner, name="script", scopes=["read", "write"], expires_days=1)
    session = requests.Session()
    session.mount("http://testserver", DjangoAdapter())
    return PortalClient("http://testserver", key, retries=0, session=session)


def test_portal_client_artifacts_and_log(portal, owned_run, tmp_path):
    local = tmp_path / "model.onnx"
    content = os.urandom(300_000)
    local.write_bytes(content)
    info = portal.log_artifact(owned_run.pk, local)
    assert info["path"] == "model.onnx" and info["sha256"] == hashlib.sha256(content).hexdigest()
    assert portal.log_artifact(owned_run.pk, str(local), path="export/v1 model.onnx")["size"] == len(content)
    assert [a["path"] for a in portal.list_artifacts(owned_run.pk)] == ["export/v1 model.onnx", "model.onnx"]
    saved = portal.download_artifact(owned_run.pk, "export/v1 model.onnx", tmp_path / "copy.onnx")
    assert Path(saved).read_bytes() == content
    with pytest.raises(PortalError) as info:
        portal.log_artifact(owned_run.pk, local, path="../up")
    assert info.value.status == 400 and "relative" in str(info.value.detail)
    with pytest.raises(PortalError) as info:
        portal.download_artifact(owned_run.pk, "missing.bin", tmp_path / "missing.bin")
    assert info.value.status == 404 and not (tmp_path / "missing.bin").exists()

    portal.append_log(owned_run.pk, "line 1\n")
    big = "é" * 40_000 + "end\n"  # 80 KB of UTF-8: sent in two calls
    portal.append_log(owned_run.pk, big)
    portal.append_log(owned_run.pk, "")  # nothing to send
    owned_run.refresh_from_db()
    assert owned_run.log_tail == "line 1\n" + big
