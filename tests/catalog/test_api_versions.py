"""Versions over the API: multipart upload, validation, downloads, immutability, audit."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.catalog.models import ModelVersion
from apps.core import vault
from apps.core.models import AuditEntry, VaultBlob
from apps.core.permissions import share
from tests.catalog.conftest import add_versions, queries_for
from tests.conftest import api_client_for
from tests.permissions import StrangerDeniedMixin

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/credit-risk/versions/"


def _files() -> set[Path]:
    root = Path(vault.storage().location)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def upload(client, onnx: bytes, **fields):
    payload = {"artifact": SimpleUploadedFile("model.onnx", onnx, "application/octet-stream"), **fields}
    return client.post(URL, payload, format="multipart")


class TestVersionStranger(StrangerDeniedMixin):
    list_url = "/api/v1/models/"
    change_payload = {"description": "hijacked"}

    @pytest.fixture
    def target(self, version):
        return version

    def detail_url(self, obj):
        return f"/api/v1/models/{obj.model.name}/versions/{obj.version}/"

    def identity(self, item, obj):
        return item.get("name") == obj.model.name

    def extra_urls(self, obj):
        base = self.detail_url(obj)
        return [f"{base}artifact", f"{base}state-dict", f"/api/v1/models/{obj.model.name}/versions/"]

    def test_stranger_download_is_not_audited(self, stranger, target):
        assert api_client_for(stranger).get(f"{self.detail_url(target)}artifact").status_code == 404
        assert not AuditEntry.objects.filter(additional_data__event="artifact.download").exists()


def test_upload_round_trip_and_audit(api_owner, registered, onnx_bytes, weights_bytes):
    r = upload(
        api_owner,
        onnx_bytes,
        state_dict=SimpleUploadedFile("w.safetensors", weights_bytes),
        description="first",
        tags="fraud, tabular",
        metrics='{"auc": 0.91, "f1": 0.8}',
        lineage='{"run_id": "17", "feature_views": ["loans"], "seed": 3}',
        code_version="abc123",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["version"] == 1 and body["framework"] == "pytorch" and body["tags"] == ["fraud", "tabular"]
    assert body["signature"]["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 6]}]
    assert body["signature"]["outputs"][0]["shape"] == ["batch", 3]
    assert body["lineage"] == {"run_id": "17", "training_set": "", "training_data_digest": "", "code_version": "abc123",
                               "feature_views": ["loans"], "package_versions": {}, "seed": 3}  # fmt: skip
    assert body["artifact"]["sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    assert body["artifact"]["size"] == len(onnx_bytes)
    download = api_owner.get(body["artifact"]["download_url"])
    assert download.status_code == 200 and download["Content-Length"] == str(len(onnx_bytes))
    assert b"".join(download.streaming_content) == onnx_bytes
    weights = api_owner.get(body["state_dict"]["download_url"])
    assert b"".join(weights.streaming_content) == weights_bytes
    # The stored files hold no plaintext.
    for path in _files():
        assert onnx_bytes[-200:] not in path.read_bytes()
    events = list(
        AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS).values_list("additional_data__event", flat=True)
    )
    assert events.count("artifact.upload") == 1 and events.count("artifact.download") == 2
    entry = AuditEntry.objects.filter(additional_data__event="artifact.download").first()
    assert entry.actor.username == "owner" and entry.additional_data["version"] == 1
    assert upload(api_owner, onnx_bytes).json()["version"] == 2


@pytest.mark.parametrize(
    "kind, fields, expect",
    [
        ("garbage", {}, "not an ONNX model"),
        ("empty", {}, "empty"),
        ("onnx", {"metrics": '{"auc": "high"}'}, "finite number"),
        ("onnx", {"metrics": "[1]"}, "JSON dict"),
        ("onnx", {"lineage": '{"colour": "red"}'}, "Unknown lineage"),
        ("onnx", {"seed": "abc"}, "integer"),
        ("onnx", {"framework": "cobol"}, "valid choice"),
        ("onnx", {"tags": '["Bad Tag"]'}, "Invalid tag"),
        ("pickle", {}, "safetensors"),
        ("truncated_weights", {}, "truncated"),
        ("broken_graph", {}, "ONNX"),
    ],
)
def test_bad_uploads_are_400_and_leave_nothing(api_owner, registered, onnx_bytes, weights_bytes, kind, fields, expect):
    before_files, before_blobs = _files(), VaultBlob.objects.count()
    data = {"garbage": b"\x00\x01 not a model at all", "empty": b""}.get(kind, onnx_bytes)
    if kind == "broken_graph":
        import onnx

        proto = onnx.load_from_string(onnx_bytes)
        proto.graph.node[0].op_type = "NoSuchOp"
        data = proto.SerializeToString()
    if kind == "pickle":
        fields["state_dict"] = SimpleUploadedFile("w.pt", pickle.dumps({"w": [1, 2, 3]}))
    if kind == "truncated_weights":
        fields["state_dict"] = SimpleUploadedFile("w.safetensors", weights_bytes[:-4])
    r = upload(api_owner, data, **fields)
    assert r.status_code == 400, r.content
    assert expect in str(r.json()), r.json()
    assert ModelVersion.objects.count() == 0 and VaultBlob.objects.count() == before_blobs
    assert _files() == before_files


def test_missing_artifact_and_too_large(api_owner, registered, onnx_bytes, settings):
    r = api_owner.post(URL, {"description": "no file"}, format="multipart")
    assert r.status_code == 400 and "artifact" in r.json()
    settings.CATALOG_MAX_ARTIFACT_BYTES = 1000
    r = upload(api_owner, onnx_bytes)
    assert r.status_code == 413 and "1,000" in r.json()["detail"]
    big = io.BytesIO(b"x" * 5000)
    r = api_owner.post(URL, {"artifact": SimpleUploadedFile("a.onnx", big.getvalue())}, format="multipart")
    assert r.status_code == 413
    assert ModelVersion.objects.count() == 0 and not _files()


def test_failure_after_store_removes_blobs(api_owner, registered, onnx_bytes, monkeypatch):
    """A crash after the ciphertext was written leaves no row and no file."""
    from apps.catalog import services

    def boom(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services.ModelVersion.objects, "create", boom)
    with pytest.raises(RuntimeError):
        services.version_register(
            model=registered, actor=registered.owner, artifact=io.BytesIO(onnx_bytes), artifact_size=len(onnx_bytes)
        )
    assert VaultBlob.objects.count() == 0 and not _files()


def test_version_patch_is_limited(api_owner, version):
    url = "/api/v1/models/credit-risk/versions/1/"
    r = api_owner.patch(url, {"description": "better", "metrics": {"auc": 0.95}, "tags": ["x"]}, format="json")
    assert r.status_code == 200 and r.json()["metrics"] == {"auc": 0.95}
    for field, value in [("signature", {}), ("run_id", "99"), ("version", 5), ("seed", 1)]:
        r = api_owner.patch(url, {field: value}, format="json")
        assert r.status_code == 409 and "immutable" in r.json()["detail"], field
    version.refresh_from_db()
    assert version.run_id == "42" and version.seed == 7
    from apps.catalog.models import ImmutableVersionError

    version.run_id = "changed"
    with pytest.raises(ImmutableVersionError):
        version.save()


def test_viewer_downloads_but_cannot_upload(api_collaborator, collaborator, version, onnx_bytes):
    share(version.model, role="viewer", user=collaborator)
    assert api_collaborator.get("/api/v1/models/credit-risk/versions/1/artifact").status_code == 200
    r = api_collaborator.post(URL, {"artifact": SimpleUploadedFile("m.onnx", onnx_bytes)}, format="multipart")
    assert r.status_code == 403
    assert (
        api_collaborator.patch(
            "/api/v1/models/credit-risk/versions/1/", {"description": "x"}, format="json"
        ).status_code
        == 403
    )


def test_archived_model_refuses_versions(api_owner, registered, onnx_bytes):
    api_owner.delete("/api/v1/models/credit-risk/")
    r = upload(api_owner, onnx_bytes)
    assert r.status_code == 409 and "archived" in r.json()["detail"]


def test_tampered_artifact_download_fails_with_clear_error(api_owner, version):
    path = Path(vault.storage().path(version.artifact.storage_key))
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0x80
    path.write_bytes(bytes(raw))
    r = api_owner.get("/api/v1/models/credit-risk/versions/1/artifact")
    assert r.status_code == 500 and "integrity check" in r.json()["detail"]
    assert r.json() == {"detail": r.json()["detail"]}  # the one error shape (shared/API.md)


def test_refused_download_is_audited_as_integrity_error_not_as_download(api_owner, version):
    path = Path(vault.storage().path(version.artifact.storage_key))
    path.write_bytes(path.read_bytes()[:-3])
    assert api_owner.get("/api/v1/models/credit-risk/versions/1/artifact").status_code == 500
    events = list(AuditEntry.objects.values_list("additional_data__event", flat=True))
    assert "artifact.integrity_error" in events and "artifact.download" not in events


def test_version_list_query_count_is_the_same_for_5_and_50_versions(api_owner, owner, registered, version):
    add_versions(registered, owner, version.artifact, 4)
    url = URL + "?page_size=100"
    queries_for(api_owner, url)
    five = queries_for(api_owner, url, rows=5)
    add_versions(registered, owner, version.artifact, 45)
    assert queries_for(api_owner, url, rows=50) == five
    newest = api_owner.get(url).json()["results"][0]
    assert newest["aliases"] == ["a50"]
    assert newest["artifact"]["download_url"] == "/api/v1/models/credit-risk/versions/50/artifact"


def test_upload_with_unknown_field_is_400_naming_it(api_owner, registered, onnx_bytes):
    r = upload(api_owner, onnx_bytes, desciption="typo")
    assert r.status_code == 400 and r.json()["desciption"] == ["Unknown field."]
    assert ModelVersion.objects.count() == 0


def test_unknown_version_is_404(api_owner, version):
    for ref in ("2", "abc", "0"):
        assert api_owner.get(f"/api/v1/models/credit-risk/versions/{ref}/").status_code == 404


def test_schema_documents_catalog(api_owner):
    schema = api_owner.get("/api/v1/schema/").content.decode()
    for path in ["/api/v1/models/{name}/versions/", "/api/v1/models/{name}/aliases/{alias}", "multipart/form-data",
                 "/api/v1/models/{name}/versions/{version}/artifact"]:  # fmt: skip
        assert path in schema, path
