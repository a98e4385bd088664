"""Batch scoring in process: create (upload or training set), run the runner directly, resume
after an interruption, cancel between chunks, column checks, the size limit, strangers.

The end-to-end runs through a real Celery worker are in test_scoring_worker.py."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from apps.catalog.models import ModelVersion
from apps.core.models import AuditEntry, VaultBlob
from apps.core.permissions import grant_owner, share
from apps.features.models import TrainingSet
from apps.serving.inference import runtime
from apps.serving.models import ScoringJob
from apps.serving.scoring import runner
from apps.serving.scoring.services import scoring_job_cancel
from tests.conftest import api_client_for
from tests.serving.conftest import FEATURES, rows

JOBS = "/api/v1/scoring/jobs/"
FEATURE_NAMES = [f"f{i}" for i in range(FEATURES)]


def input_table(n: int, seed: int = 0) -> pa.Table:
    data = np.asarray(rows(n, seed), dtype=np.float32)
    columns = {"id": pa.array(range(1000, 1000 + n), pa.int64())}
    columns |= {name: pa.array(data[:, i], pa.float32()) for i, name in enumerate(FEATURE_NAMES)}
    columns["label"] = pa.array([i % 2 for i in range(n)], pa.int64())
    return pa.table(columns)


def csv_file(table: pa.Table, name: str = "rows.csv") -> io.BytesIO:
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    buffer.seek(0)
    buffer.name = name
    return buffer


def parquet_file(table: pa.Table, name: str = "rows.parquet") -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    buffer.name = name
    return buffer


def expected_outputs(onnx: bytes, table: pa.Table) -> np.ndarray:
    """ONNX Runtime run directly on the same rows, as float32 like the model's input."""
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    x = np.column_stack([table.column(n).to_numpy().astype(np.float32) for n in FEATURE_NAMES])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def post_job(client, upload, **fields):
    body = {"model": "fraud-score", "version": 1, "file": upload, "exclude": ["id", "label"], **fields}
    return client.post(JOBS, body, format="multipart")


def download(client, pk: int, fmt: str) -> tuple[bytes, object]:
    response = client.get(f"{JOBS}{pk}/predictions?format={fmt}")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content), response


@pytest.fixture(autouse=True)
def fresh_sessions():
    """Sessions are cached per version id, and ids repeat across tests on SQLite: load each anew."""
    runtime.SESSIONS.clear()


@pytest.fixture
def client(owner):
    return api_client_for(owner)


@pytest.mark.django_db
def test_csv_upload_scores_like_onnx_runtime_and_downloads_both_formats(client, scorer, mlp_onnx):
    table = input_table(250)
    response = post_job(client, csv_file(table))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "queued" and body["queue"] == "cpu" and body["upload"] == "rows.csv"
    assert runner.execute(body["id"]) == "succeeded"
    job = client.get(f"{JOBS}{body['id']}/").json()
    assert job["state"] == "succeeded" and job["rows"] == 250 and job["progress"] == 1.0
    assert job["lineage"]["model"] == "fraud-score" and job["lineage"]["version"] == 1 and job["lineage"]["rows"] == 250
    assert job["lineage"]["input_digest"] == hashlib.sha256(csv_file(table).getvalue()).hexdigest()

    raw, response = download(client, body["id"], "parquet")
    assert hashlib.sha256(raw).hexdigest() == job["digest"] == response["X-Content-SHA256"]
    assert response["Content-Disposition"].startswith("attachment")
    got = pq.read_table(io.BytesIO(raw))
    assert got.column_names == ["row", "output_0", "output_1"]
    assert got.column("row").to_pylist() == list(range(250))
    want = expected_outputs(mlp_onnx[0], table)
    np.testing.assert_allclose(
        np.column_stack([got.column("output_0"), got.column("output_1")]), want, rtol=1e-6, atol=1e-6
    )

    access = AuditEntry.objects.filter(additional_data__event__startswith="scoring.", object_pk=str(body["id"]))
    events = access.values_list("additional_data__event", "actor__username")
    assert sorted(events) == [("scoring.create", "owner"), ("scoring.download", "owner")]

    text, response = download(client, body["id"], "csv")
    assert response["Content-Type"].startswith("text/csv")
    from_csv = pacsv.read_csv(io.BytesIO(text))
    assert from_csv.num_rows == 250 and from_csv.column_names == got.column_names
    np.testing.assert_allclose(from_csv.column("output_1").to_numpy(), want[:, 1], rtol=1e-5, atol=1e-6)


@pytest.mark.django_db
def test_parquet_upload_keeps_named_key_columns(client, scorer, mlp_onnx, settings):
    settings.SERVING_SCORING_CHUNK_ROWS = 100
    table = input_table(230, seed=3)
    response = post_job(client, parquet_file(table), keep=["id"], exclude=["label"])
    assert response.status_code == 202, response.content
    job = ScoringJob.objects.get(pk=response.json()["id"])
    assert job.rows_total == 230  # from the Parquet footer, before any row is read
    assert runner.execute(job.pk) == "succeeded"
    got = pq.read_table(io.BytesIO(download(client, job.pk, "parquet")[0]))
    assert got.column_names == ["id", "output_0", "output_1"]
    assert got.column("id").to_pylist() == list(range(1000, 1230))
    want = expected_outputs(mlp_onnx[0], table)
    np.testing.assert_allclose(got.column("output_0").to_numpy(), want[:, 0], rtol=1e-6, atol=1e-6)
    job.refresh_from_db()
    assert job.lineage["chunks"] == 3 and job.parts == []
    assert not VaultBlob.objects.filter(purpose="serving.scoring-part").exists()  # the parts are gone


class Killed(BaseException):
    """A worker dying mid-job: not an error the job records, it just stops."""


@pytest.mark.django_db
def test_an_interrupted_job_resumes_after_its_last_part(client, scorer, mlp_onnx, settings, monkeypatch):
    settings.SERVING_SCORING_CHUNK_ROWS = 100
    table = input_table(250, seed=5)
    pk = post_job(client, csv_file(table)).json()["id"]
    saved = runner._part_save
    calls, armed = [], [True]

    def dies_on_second_chunk(job, predictions):
        calls.append(predictions.num_rows)
        if armed[0] and len(calls) == 2:
            raise Killed
        return saved(job, predictions)

    monkeypatch.setattr(runner, "_part_save", dies_on_second_chunk)
    with pytest.raises(Killed):
        runner.execute(pk)
    job = ScoringJob.objects.get(pk=pk)
    assert job.state == "running" and job.rows_done == 100 and len(job.parts) == 1 and job.progress == 0.4

    calls.clear()
    armed[0] = False
    assert runner.execute(pk) == "succeeded"
    assert calls == [100, 50]  # the first chunk was not scored again
    job.refresh_from_db()
    assert job.attempts == 2 and job.rows_done == 250
    got = pq.read_table(io.BytesIO(download(client, pk, "parquet")[0]))
    assert got.column("row").to_pylist() == list(range(250))
    np.testing.assert_allclose(got.column("output_1").to_numpy(), expected_outputs(mlp_onnx[0], table)[:, 1], atol=1e-6)


@pytest.mark.django_db
def test_cancel_stops_a_running_job_before_its_next_chunk(client, owner, scorer, settings, monkeypatch):
    settings.SERVING_SCORING_CHUNK_ROWS = 100
    pk = post_job(client, csv_file(input_table(350))).json()["id"]
    saved = runner._part_save

    def cancel_after_first(job, predictions):
        done = saved(job, predictions)
        if job.rows_done == 100:
            cancelled = scoring_job_cancel(job=ScoringJob.objects.get(pk=pk), actor=owner)
            assert cancelled.state == "running" and cancelled.cancel_requested  # its lease is live
        return done

    monkeypatch.setattr(runner, "_part_save", cancel_after_first)
    assert runner.execute(pk) == "cancelled"
    job = ScoringJob.objects.get(pk=pk)
    assert job.rows_done == 100 and job.error == "Cancelled after 100 rows." and job.parts == []
    assert not VaultBlob.objects.filter(purpose="serving.scoring-part").exists()
    assert client.post(f"{JOBS}{pk}/cancel").status_code == 409
    assert client.get(f"{JOBS}{pk}/predictions").status_code == 409


@pytest.mark.django_db
def test_queued_job_cancels_at_once_and_has_no_predictions(client, scorer):
    pk = post_job(client, csv_file(input_table(10))).json()["id"]
    assert client.get(f"{JOBS}{pk}/predictions?format=csv").status_code == 409
    response = client.post(f"{JOBS}{pk}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert runner.execute(pk) == "skipped"
    assert client.post(f"{JOBS}{pk}/cancel").status_code == 409


@pytest.mark.django_db
def test_empty_values_fail_the_job_naming_the_column(client, scorer):
    table = input_table(20)
    values = table.column("f7").to_pylist()
    values[12] = None
    table = table.set_column(table.column_names.index("f7"), "f7", pa.array(values, pa.float32()))
    pk = post_job(client, csv_file(table)).json()["id"]
    assert runner.execute(pk) == "failed"
    error = ScoringJob.objects.get(pk=pk).error
    assert "'f7'" in error and "row 12" in error


def _with_signature_columns(model, extra: str) -> None:
    version = ModelVersion.objects.get(model=model, version=1)
    signature = {**version.signature, "columns": [*FEATURE_NAMES[:-1], extra]}
    ModelVersion.objects.filter(pk=version.pk).update(signature=signature)


@pytest.mark.django_db
@pytest.mark.parametrize("make_file", [csv_file, parquet_file])
def test_a_missing_signature_column_is_a_400_naming_it_and_leaves_nothing(client, scorer, vault_storage, make_file):
    _with_signature_columns(scorer, "tenure")
    response = post_job(client, make_file(input_table(10)))
    assert response.status_code == 400
    assert "'tenure'" in response.json()["file"][0]
    assert not ScoringJob.objects.exists() and not VaultBlob.objects.filter(purpose__startswith="serving").exists()
    assert not list(vault_storage.glob("serving/**/*.pvlt"))


@pytest.mark.django_db
def test_signature_columns_pick_the_inputs_by_name(client, scorer, mlp_onnx):
    _with_signature_columns(scorer, "f29")  # the version names its columns: exclude is not needed
    table = input_table(40)
    response = client.post(JOBS, {"model": "fraud-score", "version": 1, "file": csv_file(table)}, format="multipart")
    assert response.status_code == 202, response.content
    assert runner.execute(response.json()["id"]) == "succeeded"
    got = pq.read_table(io.BytesIO(download(client, response.json()["id"], "parquet")[0]))
    np.testing.assert_allclose(got.column("output_0").to_numpy(), expected_outputs(mlp_onnx[0], table)[:, 0], atol=1e-6)


@pytest.mark.django_db
def test_too_many_numeric_columns_is_a_400_that_says_to_exclude(client, scorer):
    response = post_job(client, csv_file(input_table(10)), exclude=["id"])  # label is numeric too
    assert response.status_code == 400
    assert "exclude" in response.json()["file"][0] and "31" in response.json()["file"][0]
    response = post_job(client, csv_file(input_table(10)), exclude=["nope"])
    assert response.status_code == 400 and "'nope'" in response.json()["exclude"][0]
    clashing = input_table(10).rename_columns(["output_1", *FEATURE_NAMES, "label"])
    response = post_job(client, csv_file(clashing), keep=["output_1"], exclude=["label"])
    assert response.status_code == 400 and "'output'" in response.json()["keep"][0]


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_a_413_and_leaves_nothing(client, scorer, settings, vault_storage):
    settings.SERVING_SCORING_MAX_UPLOAD_BYTES = 4096
    response = post_job(client, csv_file(input_table(200)))
    assert response.status_code == 413
    assert "4,096" in response.json()["detail"]
    assert not ScoringJob.objects.exists() and not list(vault_storage.glob("serving/**/*.pvlt"))


@pytest.mark.django_db
def test_bad_requests_are_400s(client, scorer):
    both = {"model": "fraud-score", "version": 1, "training_set": 1, "file": csv_file(input_table(5))}
    assert "file" in client.post(JOBS, both, format="multipart").json()
    assert "file" in client.post(JOBS, {"model": "fraud-score", "version": 1}, format="json").json()
    assert client.post(JOBS, {"model": "fraud-score", "version": 9, "training_set": 1}, format="json").json()["model"]
    bad = client.post(JOBS, {"model": "fraud-score", "version": 1, "training_set": 1, "colour": "red"}, format="json")
    assert bad.status_code == 400 and bad.json()["colour"] == ["Unknown field."]
    not_csv = io.BytesIO(b"PAR1 this is not parquet at all")
    not_csv.name = "rows.parquet"
    assert "file" in post_job(client, not_csv).json()


@pytest.mark.django_db
def test_strangers_get_404_and_cannot_score_a_model_they_cannot_see(client, scorer, stranger):
    pk = post_job(client, csv_file(input_table(10))).json()["id"]
    other = api_client_for(stranger)
    assert other.get(f"{JOBS}{pk}/").status_code == 404
    assert other.post(f"{JOBS}{pk}/cancel").status_code == 404
    assert other.get(f"{JOBS}{pk}/predictions").status_code == 404
    assert other.get(JOBS).json()["count"] == 0
    response = post_job(other, csv_file(input_table(10)))
    assert response.status_code == 400 and "fraud-score" in response.json()["model"][0]


@pytest.fixture
def training_set(owner, settings, tmp_path) -> TrainingSet:
    """A stored training set as rows and a file (the feature store's own tests build real ones)."""
    settings.FEATURE_STORE_ROOT = str(tmp_path / "features")
    table = input_table(120, seed=9)
    path = tmp_path / "features" / "training-sets" / "scoring.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    found = TrainingSet.objects.create(
        owner=owner, name="scoring", features=[], path="training-sets/scoring.parquet", row_count=120,
        columns=table.column_names, entity_digest="0" * 64, digest=hashlib.sha256(path.read_bytes()).hexdigest(),
    )  # fmt: skip
    grant_owner(found)
    return found


@pytest.mark.django_db
def test_a_training_set_is_scored_where_it_lies(client, scorer, training_set, mlp_onnx, stranger):
    body = {"model": "fraud-score", "version": 1, "training_set": training_set.pk, "exclude": ["id", "label"]}
    response = client.post(JOBS, body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["training_set"] == training_set.pk
    assert runner.execute(response.json()["id"]) == "succeeded"
    job = ScoringJob.objects.get(pk=response.json()["id"])
    assert job.lineage["training_set"] == training_set.pk and job.lineage["training_set_digest"] == training_set.digest
    got = pq.read_table(io.BytesIO(download(client, job.pk, "parquet")[0]))
    table = pq.read_table(training_set_path(training_set))
    np.testing.assert_allclose(got.column("output_1").to_numpy(), expected_outputs(mlp_onnx[0], table)[:, 1], atol=1e-6)

    share(scorer, role="viewer", user=stranger)  # the model, not the training set
    refused = api_client_for(stranger).post(JOBS, body, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"training_set": [f"No training set {training_set.pk} is visible to you."]}


def training_set_path(training_set: TrainingSet) -> str:
    from apps.features import offline

    return str(offline.store_root() / training_set.path)


@pytest.mark.django_db
def test_a_changed_training_set_fails_the_job_and_uses_none_of_it(client, scorer, training_set):
    body = {"model": "fraud-score", "version": 1, "training_set": training_set.pk, "exclude": ["id", "label"]}
    pk = client.post(JOBS, body, format="json").json()["id"]
    with open(training_set_path(training_set), "ab") as handle:
        handle.write(b"tampered")
    assert runner.execute(pk) == "failed"
    job = ScoringJob.objects.get(pk=pk)
    assert "digest" in job.error and job.rows_done == 0


@pytest.mark.django_db
def test_a_failure_after_the_upload_is_encrypted_leaves_no_ciphertext(owner, scorer, vault_storage, monkeypatch):
    from apps.serving.scoring import services

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "grant_owner", broken)
    with pytest.raises(RuntimeError):
        services.scoring_job_create(actor=owner, model="fraud-score", version=1, file=csv_file(input_table(10)),
                                    exclude=["id", "label"])  # fmt: skip
    assert not ScoringJob.objects.exists() and not VaultBlob.objects.filter(purpose__startswith="serving").exists()
    assert not list(vault_storage.glob("serving/**/*.pvlt"))
    assert list(vault_storage.glob("catalog/**/*.pvlt"))  # the vault is where the test looks


@pytest.mark.django_db
def test_an_unknown_region_or_resource_class_is_a_400(client, scorer):
    response = post_job(client, csv_file(input_table(5)), region="Not A Region")
    assert response.status_code == 400 and "region" in response.json()
    response = post_job(client, csv_file(input_table(5)), resource_class="tpu")
    assert response.status_code == 400 and "resource_class" in response.json()


@pytest.mark.django_db
def test_a_training_set_pinned_to_a_region_is_scored_only_there(client, scorer, training_set):
    TrainingSet.objects.filter(pk=training_set.pk).update(region="uae-north")
    body = {"model": "fraud-score", "version": 1, "training_set": training_set.pk, "exclude": ["id", "label"]}
    refused = client.post(JOBS, {**body, "region": "eu-west"}, format="json")
    assert refused.status_code == 400 and "uae-north" in refused.json()["region"][0]
    response = client.post(JOBS, body, format="json")
    assert response.status_code == 202 and response.json()["queue"] == "cpu.uae-north"
    assert response.json()["region"] == "uae-north"
    assert runner.execute(response.json()["id"]) == "failed"  # this process runs in the default region
    assert "uae-north" in ScoringJob.objects.get(pk=response.json()["id"]).error
