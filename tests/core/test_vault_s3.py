"""The artifact vault on S3-compatible object storage (a real moto server on loopback): ciphertext
only in the bucket, integrity, per-region buckets that never fall back, streamed multipart writes
and ranged reads with bounded memory, run artifacts and catalog versions, key rotation."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import resource
import time
import tracemalloc

import numpy as np
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from apps.accounts.services import token_create
from apps.catalog import services as catalog
from apps.catalog.torch_export import onnx_bytes_of
from apps.core import objectstore, vault
from apps.core.errors import ResidencyError
from apps.core.models import VaultBlob
from apps.experiments.models import RunArtifact
from portal.env import ConfigError
from tests.catalog.conftest import tiny_module
from tests.experiments.factories import experiment, run
from tests.s3 import s3_buckets, s3_server  # noqa: F401  fixtures

pytestmark = pytest.mark.django_db
MIB = 1 << 20
MARKER = b"PLAINTEXT-MARKER-7f3a"


@pytest.fixture
def s3(s3_buckets):  # noqa: F811
    """Fresh buckets with the vault pointed at them: {"vault", "vault_eu", ..., "client"}."""
    return s3_buckets


def _object(s3, blob: VaultBlob, bucket: str = "vault") -> bytes:
    return s3["client"].get_object(Bucket=s3[bucket], Key=blob.storage_key)["Body"].read()


def _keys(s3, bucket: str) -> list[str]:
    return list(objectstore.list_keys(s3["client"], s3[bucket]))


def _open_uploads(s3, bucket: str = "vault") -> list:
    return s3["client"].list_multipart_uploads(Bucket=s3[bucket]).get("Uploads", [])


def test_round_trip_stores_only_ciphertext(s3):
    data = os.urandom(3 * MIB) + MARKER * 5000
    blob = vault.blob_store(io.BytesIO(data), purpose="test.bin")
    assert vault.blob_read(blob) == data
    assert b"".join(vault.blob_chunks(blob)) == data
    vault.blob_verify(blob)
    assert blob.region == "default" and _keys(s3, "vault") == [blob.storage_key]
    stored = _object(s3, blob)
    assert len(stored) == blob.ciphertext_size == vault.crypto.HEADER_SIZE + len(data) + 4 * vault.crypto.TAG_SIZE
    assert MARKER not in stored and data[:4096] not in stored
    assert not _keys(s3, "vault_eu") and not (vault.storage().exists(blob.storage_key))


def test_tampered_object_fails_and_missing_object_is_named(s3):
    data = os.urandom(3 * MIB)
    blob = vault.blob_store(io.BytesIO(data), purpose="test.bin")
    raw = bytearray(_object(s3, blob))
    raw[len(raw) // 2] ^= 0x01  # inside the second of three chunks
    s3["client"].put_object(Bucket=s3["vault"], Key=blob.storage_key, Body=bytes(raw))
    received = bytearray()
    with pytest.raises(vault.IntegrityError, match="integrity check at chunk 1"):
        for chunk in vault.blob_chunks(blob):
            received += chunk
    assert bytes(received) == data[: len(received)] and len(received) < len(data)

    s3["client"].delete_object(Bucket=s3["vault"], Key=blob.storage_key)
    with pytest.raises(vault.IntegrityError, match="missing from the vault storage"):
        vault.blob_read(blob)


def test_object_replaced_while_reading_fails(s3):
    blob = vault.blob_store(io.BytesIO(os.urandom(3 * MIB)), purpose="test.bin")
    client, bucket = s3["client"], s3["vault"]
    reader = objectstore.RangedReader(client, bucket, blob.storage_key, block_size=MIB)
    assert len(reader.read(1000)) == 1000
    client.put_object(Bucket=bucket, Key=blob.storage_key, Body=_object(s3, blob)[::-1])
    with pytest.raises(vault.IntegrityError, match="replaced"):
        reader.read(2 * MIB)  # past the first block: the next GET sees another ETag


def test_ranged_reader_seeks_across_blocks(s3):
    data = os.urandom(50_000)
    client, bucket = s3["client"], s3["vault"]
    client.put_object(Bucket=bucket, Key="plain/object", Body=data)
    with objectstore.RangedReader(client, bucket, "plain/object", block_size=4096) as reader:
        assert reader.seekable() and reader.size == len(data)
        assert reader.read(10_000) == data[:10_000]  # three GETs
        assert reader.seek(12_345) == 12_345 and reader.read(5000) == data[12_345:17_345]
        assert reader.seek(-100, io.SEEK_END) == len(data) - 100 and reader.read() == data[-100:]
        assert reader.read(10) == b"" and reader.tell() == len(data)
        reader.seek(-10, io.SEEK_CUR)
        assert reader.read() == data[-10:]


def test_blob_in_region_eu_lands_in_its_bucket(s3, settings):
    data = MARKER + os.urandom(100_000)
    blob = vault.blob_store(io.BytesIO(data), purpose="test.bin", region="eu")
    assert blob.region == "eu" and VaultBlob.objects.get(pk=blob.pk).region == "eu"
    assert _keys(s3, "vault_eu") == [blob.storage_key] and not _keys(s3, "vault")
    assert MARKER not in _object(s3, blob, "vault_eu")
    assert vault.blob_read(VaultBlob.objects.get(pk=blob.pk)) == data

    settings.PORTAL_REGION = "eu"  # a process of region eu writes to the eu bucket by default
    name, result = vault.blob_write(io.BytesIO(b"from an eu process"), purpose="test.bin")
    assert result.region == "eu" and vault.blob_record(name, result, purpose="test.bin").region == "eu"
    assert sorted(_keys(s3, "vault_eu")) == sorted([blob.storage_key, name])


def test_region_without_bucket_is_refused_never_defaulted(s3, settings):
    with pytest.raises(ResidencyError, match=r"apac=<bucket> to VAULT_S3_REGION_BUCKETS"):
        vault.blob_store(io.BytesIO(MARKER * 100), purpose="test.bin", region="apac")
    settings.PORTAL_REGION = "apac"
    with pytest.raises(ResidencyError, match="never stored in another region's bucket"):
        vault.blob_write(io.BytesIO(MARKER), purpose="test.bin")
    assert not _keys(s3, "vault") and not _keys(s3, "vault_eu") and not _open_uploads(s3)
    assert not VaultBlob.objects.exists()
    with pytest.raises(ResidencyError, match="FEATURE_STORE_S3_REGION_BUCKETS"):
        objectstore.bucket_for(settings.FEATURE_STORE_S3_BUCKETS, "apac")
    with pytest.raises(ConfigError, match="set VAULT_S3_BUCKET"):
        objectstore.bucket_for({"eu": "vault-eu"}, "default", env_var="VAULT_S3_BUCKET")


def test_large_blob_uses_multipart_and_leaves_no_upload(s3, settings):
    settings.S3_MULTIPART_CHUNK_MB = 5  # S3's smallest part
    data = os.urandom(12 * MIB)
    big = vault.blob_store(io.BytesIO(data), purpose="test.bin")
    small = vault.blob_store(io.BytesIO(b"small"), purpose="test.bin")
    client, bucket = s3["client"], s3["vault"]
    # A multipart object's ETag is "<md5 of part md5s>-<parts>"; a single PUT's is a plain MD5.
    assert client.head_object(Bucket=bucket, Key=big.storage_key)["ETag"].strip('"').endswith("-3")
    assert "-" not in client.head_object(Bucket=bucket, Key=small.storage_key)["ETag"]
    assert not _open_uploads(s3)
    assert vault.blob_read(big) == data and vault.blob_read(small) == b"small"


class FailingSource(io.RawIOBase):
    """Gives `fail_after` bytes, then breaks like a dropped client connection."""

    def __init__(self, fail_after: int) -> None:
        self.left = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:
        if self.left <= 0:
            raise ConnectionResetError("client went away")
        n = min(len(view), self.left)
        view[:n] = os.urandom(n)
        self.left -= n
        return n


def test_aborted_write_leaves_no_object_and_no_upload(s3, settings):
    settings.S3_MULTIPART_CHUNK_MB = 5
    with pytest.raises(ConnectionResetError):
        vault.blob_store(FailingSource(12 * MIB), purpose="test.bin")  # two parts went up first
    assert not _keys(s3, "vault") and not _open_uploads(s3)
    assert not VaultBlob.objects.exists()


def test_missing_bucket_says_what_to_check(s3, settings):
    settings.VAULT_S3_BUCKETS = {**settings.VAULT_S3_BUCKETS, "default": "no-such-vault-bucket"}
    with pytest.raises(vault.VaultError, match="does not exist .*VAULT_S3_BUCKET"):
        vault.blob_store(io.BytesIO(b"data"), purpose="test.bin")


def test_client_is_cached_per_configuration(s3, settings):
    first = objectstore.client()
    assert objectstore.client() is first
    settings.S3_ADDRESSING_STYLE = "virtual"
    assert objectstore.client() is not first
    settings.S3_ADDRESSING_STYLE = "path"
    assert objectstore.client() is first
    assert settings.S3_SECRET_ACCESS_KEY not in repr(list(objectstore._clients))
    settings.S3_SECRET_ACCESS_KEY = ""
    with pytest.raises(ConfigError, match="both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"):
        objectstore.client()


@pytest.mark.parametrize(
    "error, expect",
    [
        (ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObject"), "check S3_ACCESS_KEY_ID"),
        (ClientError({"Error": {"Code": "InvalidAccessKeyId"}}, "PutObject"), "S3_SECRET_ACCESS_KEY"),
        (ClientError({"Error": {"Code": "NoSuchBucket"}}, "PutObject"), "create it, or check VAULT_S3_BUCKET"),
        (EndpointConnectionError(endpoint_url="https://s3.example"), "check S3_ENDPOINT_URL"),
        (NoCredentialsError(), "set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"),
    ],
)
def test_storage_failures_say_what_to_check(s3, error, expect):
    mapped = objectstore.storage_error(error, s3["vault"], "catalog/ab/x.pvlt")
    assert type(mapped) is vault.VaultError and expect in str(mapped)


def test_blob_delete_removes_the_object_after_commit(s3, django_capture_on_commit_callbacks):
    blob = vault.blob_store(io.BytesIO(b"to delete"), purpose="test.bin", region="eu")
    other = vault.blob_store(io.BytesIO(b"superseded"), purpose="test.bin", region="eu")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        vault.blob_delete(blob)
        vault.blob_delete_superseded(other.pk, other.storage_key)
    assert sorted(_keys(s3, "vault_eu")) == sorted([blob.storage_key, other.storage_key])  # not yet
    for callback in callbacks:
        callback()
    assert not _keys(s3, "vault_eu") and not VaultBlob.objects.exists()


def test_keys_rotate_rewraps_s3_blobs_without_rewriting_them(s3, capsys):
    blobs = [vault.blob_store(io.BytesIO(MARKER + os.urandom(1000)), purpose="test.bin") for _ in range(3)]
    blobs.append(vault.blob_store(io.BytesIO(b"eu data"), purpose="test.bin", region="eu"))
    before = {b.pk: _object(s3, b, "vault_eu" if b.region == "eu" else "vault") for b in blobs}
    call_command("keys_rotate", "--kid", "rotateds3")
    for blob in blobs:
        fresh = VaultBlob.objects.get(pk=blob.pk)
        assert fresh.kid == "rotateds3" and fresh.wrapped_key != blob.wrapped_key
        assert _object(s3, fresh, "vault_eu" if fresh.region == "eu" else "vault") == before[blob.pk]
        vault.blob_verify(fresh)
    assert vault.blob_read(VaultBlob.objects.get(pk=blobs[-1].pk)) == b"eu data"


def test_run_artifact_upload_and_download_on_s3(s3, api_owner, owner):
    r = run(experiment(owner), owner)
    content = MARKER + os.urandom(2_500_000)
    payload = {"file": SimpleUploadedFile("model.onnx", content, "application/octet-stream"), "path": "out/model.onnx"}
    answer = api_owner.post(f"/api/v1/runs/{r.pk}/artifacts", payload, format="multipart")
    assert answer.status_code == 201, answer.content
    stored = RunArtifact.objects.select_related("blob").get(run=r)
    assert _keys(s3, "vault") == [stored.blob.storage_key]
    assert MARKER not in _object(s3, stored.blob)
    download = api_owner.get(f"/api/v1/runs/{r.pk}/artifacts/out/model.onnx")
    assert download.status_code == 200 and download["Content-Length"] == str(len(content))
    assert b"".join(download.streaming_content) == content


def test_mlflow_artifact_proxy_on_s3(s3, owner):
    r = run(experiment(owner), owner)
    _, key = token_create(user=owner, name="mlflow", scopes=["read", "write"], expires_days=1)
    mlflow = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    base = f"/api/2.0/mlflow-artifacts/artifacts/{r.experiment_id}/{r.pk}/artifacts"
    content = MARKER + os.urandom(1_500_000)
    put = mlflow.put(f"{base}/model/weights.bin", data=content, content_type="application/octet-stream")
    assert put.status_code == 200, put.content
    stored = RunArtifact.objects.select_related("blob").get(run=r)
    assert _keys(s3, "vault") == [stored.blob.storage_key] and MARKER not in _object(s3, stored.blob)
    assert b"".join(mlflow.get(f"{base}/model/weights.bin").streaming_content) == content


def test_catalog_version_upload_and_download_on_s3(s3, api_owner, owner):
    onnx = onnx_bytes_of(tiny_module(), np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32))
    catalog.model_create(actor=owner, name="credit-risk", description="Scores loans", tags=["tabular"])
    payload = {"artifact": SimpleUploadedFile("model.onnx", onnx, "application/octet-stream")}
    answer = api_owner.post("/api/v1/models/credit-risk/versions/", payload, format="multipart")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    keys = _keys(s3, "vault")
    assert len(keys) == 1 and onnx[-200:] not in s3["client"].get_object(Bucket=s3["vault"], Key=keys[0])["Body"].read()
    download = api_owner.get(body["artifact"]["download_url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == onnx


class PatternSource(io.RawIOBase):
    """`size` bytes made on the fly from a 1 MiB random block and a counter (no buffer of the
    whole), hashed as they are handed out."""

    def __init__(self, size: int) -> None:
        self.left, self.block, self.offset = size, os.urandom(MIB), 0
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:
        n = min(len(view), self.left, MIB - self.offset % MIB)
        if n <= 0:
            return 0
        start = self.offset % MIB
        view[:n] = self.block[start : start + n]
        if start == 0:  # every MiB differs: its first 8 bytes are its number
            view[:8] = (self.offset // MIB).to_bytes(8, "big")
        self.digest.update(view[:n])
        self.left -= n
        self.offset += n
        return n


@pytest.mark.slow
def test_one_gib_artifact_streams_with_bounded_memory(s3):
    size = 1 << 30
    source = PatternSource(size)
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    started = time.monotonic()
    tracemalloc.start()
    try:
        blob = vault.blob_store(source, purpose="test.bin")
        written = time.monotonic()
        digest, total = hashlib.sha256(), 0
        for chunk in vault.blob_chunks(blob):
            digest.update(chunk)
            total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    done = time.monotonic()
    print(f"1 GiB: write {written - started:.1f} s, read {done - written:.1f} s, "
          f"peak {peak / MIB:.0f} MiB traced, max RSS +{rss_growth / MIB:.0f} MiB")  # fmt: skip
    assert total == size == blob.plaintext_size
    assert digest.hexdigest() == source.digest.hexdigest() == blob.sha256
    assert peak < 128 * MIB, f"Python allocations peaked at {peak / MIB:.0f} MiB"
    assert rss_growth < 128 * MIB, f"the process grew by {rss_growth / MIB:.0f} MiB"
    head = s3["client"].head_object(Bucket=s3["vault"], Key=blob.storage_key)
    assert head["ContentLength"] == blob.ciphertext_size and not _open_uploads(s3)
