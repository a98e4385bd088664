"""The offline store on S3-compatible storage (issue 20), against a real moto server: every file
goes to the bucket of its region (apps/features/filestore.py) and every reader sees what it sees on
local disk; PII files are ciphertext in the bucket; retention and failed writes leave no object."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.core import crypto
from apps.core.errors import IntegrityFailure, ResidencyError
from apps.core.models import VaultBlob
from apps.features import filestore, offline, sealed, services, training_sets
from apps.features.models import Partition, TrainingSet
from apps.features.schema import CREATED_TS
from portal.env import ConfigError
from tests.conftest import api_client_for
from tests.features.conftest import FEATURES, T0, iso, rows
from tests.s3 import s3_buckets, s3_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
SECRET = b"c1@example.com"
PLAIN_FEATURES = [{**f, "pii": False} for f in FEATURES]
LABELS = [
    {"customer_id": 1, "event_timestamp": "2024-06-01T00:00:00Z", "label": 1},
    {"customer_id": 2, "event_timestamp": "2024-06-01T00:00:00Z", "label": 0},
]


@pytest.fixture
def s3(s3_buckets):  # noqa: F811  (the fixture imported above)
    """Fresh buckets on the moto server, the feature store pointed at them (tests/s3.py)."""
    return s3_buckets


def objects(s3, bucket: str) -> dict[str, bytes]:
    """Every object in `bucket` (key -> bytes), directory markers included."""
    client = s3["client"]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def local_files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def make_view(owner, customer, name: str, features=FEATURES, region: str = "default"):
    return services.feature_view_create(
        actor=owner, name=name, entity=customer, features=features, ttl_seconds=0, region=region
    )


def what_readers_see(view, owner) -> dict:
    """The view as every reader sees it: offline rows, online values and a point-in-time join."""
    offline_rows = offline.read_view(view).drop_columns([CREATED_TS]).sort_by("customer_id").to_pylist()
    job = services.feature_view_materialize(
        view=view, actor=owner, start=T0 - timedelta(days=1), end=T0 + timedelta(30)
    )
    assert services.materialization_run(job_id=job.pk).state == "succeeded"
    refs = [f"{view.name}:{f}" for f in ("balance", "orders", "segment", "email")]
    online = services.online_read(actor=owner, features=refs, entities={"customer_id": [0, 1, 2, 9]})
    ts = training_sets.training_set_create(actor=owner, name=f"{view.name}-set", features=refs, entity_rows=LABELS)
    joined = training_sets.training_set_load(ts, actor=owner).to_pylist()
    results = {ref.split(":")[1]: online["results"][ref] for ref in refs}
    return {"offline": offline_rows, "online": results, "training_set": joined}


def test_reads_from_s3_match_local_disk(s3, settings, owner, customer, feature_store):
    settings.FEATURE_STORE_S3_BUCKET = ""  # local disk first, then the same data on S3
    local_view = make_view(owner, customer, "on-disk")
    services.feature_view_ingest(view=local_view, actor=owner, data=rows())
    on_disk = what_readers_see(local_view, owner)
    assert len(local_files(feature_store)) == 3  # 2 partitions and 1 training set

    settings.FEATURE_STORE_S3_BUCKET = s3["features"]
    view = make_view(owner, customer, "on-s3")
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    assert what_readers_see(view, owner) == on_disk
    stored = objects(s3, s3["features"])
    parts = list(view.partitions.values_list("path", flat=True))
    ts = TrainingSet.objects.get(name="on-s3-set")
    assert sorted(stored) == sorted([*parts, ts.path]) and all(p.startswith("default/on-s3/v1/date=") for p in parts)
    assert len(local_files(feature_store)) == 3  # nothing new on local disk
    assert objects(s3, s3["features_eu"]) == {}


def test_a_training_set_is_stored_in_the_bucket_and_reads_back(s3, owner, customer):
    view = make_view(owner, customer, "plain-stats", features=PLAIN_FEATURES)
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    ts = training_sets.training_set_create(
        actor=owner, name="churn", features=["plain-stats:balance", "plain-stats:segment"], entity_rows=LABELS
    )
    assert ts.path.startswith("default/_training-sets/churn-")
    data = objects(s3, s3["features"])[ts.path]
    assert hashlib.sha256(data).hexdigest() == ts.digest  # plain Parquet, as on disk
    stored = pq.read_table(io.BytesIO(data))
    assert stored.column("balance").to_pylist() == [101.0, 201.0]
    assert training_sets.training_set_load(ts, actor=owner).equals(stored)
    assert training_sets.training_set_schema(ts) == stored.schema
    with training_sets.training_set_local_file(ts) as local:  # batch scoring: a downloaded, checked copy
        assert pq.read_table(local).equals(stored) and oct(local.stat().st_mode & 0o777) == "0o600"
    assert not local.exists()
    response = api_client_for(owner).get(f"/api/v1/training-sets/{ts.pk}/data?format=parquet")
    assert response.status_code == 200
    assert pq.read_table(io.BytesIO(b"".join(response.streaming_content))).equals(stored)

    s3["client"].put_object(Bucket=s3["features"], Key=ts.path, Body=data[:-1] + b"x")
    with pytest.raises(IntegrityFailure), training_sets.training_set_local_file(ts):
        pass
    with pytest.raises(IntegrityFailure):
        training_sets.training_set_load(ts, actor=owner)


def assert_ciphertext(data: bytes) -> None:
    assert SECRET not in data and b"example.com" not in data
    assert data[:4] == crypto.MAGIC
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(data))


def test_a_pii_views_objects_are_ciphertext_only(s3, owner, ingested):
    ts = training_sets.training_set_create(
        actor=owner, name="contacts", features=["customer-stats:email"], entity_rows=LABELS
    )
    stored = objects(s3, s3["features"])
    paths = [*ingested.partitions.values_list("path", flat=True), ts.path]
    assert sorted(stored) == sorted(paths) and len(paths) == 3
    for data in stored.values():
        assert_ciphertext(data)
    assert VaultBlob.objects.filter(purpose=sealed.PURPOSE).count() == 3
    emails = sorted(offline.read_view(ingested).column("email").to_pylist())
    assert emails == sorted(f"c{k}@example.com" for k in range(3) for _ in range(2))
    assert training_sets.training_set_load(ts, actor=owner).column("email").to_pylist() == [
        "c1@example.com",
        "c2@example.com",
    ]
    with training_sets.training_set_local_file(ts) as local:  # decrypted into a private copy
        assert pq.read_table(local).column("email").to_pylist()[0] == "c1@example.com"


def test_the_encrypt_command_seals_plain_objects_in_place(
    s3,
    owner,
    customer,
    django_capture_on_commit_callbacks,
):
    view = make_view(owner, customer, "late-pii", features=PLAIN_FEATURES)
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    plain = objects(s3, s3["features"])
    assert all(data[:4] == b"PAR1" for data in plain.values()) and len(plain) == 2
    services.feature_view_update(view=view, actor=owner, features=FEATURES)
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("features_encrypt_pii", "--no-progress", stdout=out)
    assert json.loads(out.getvalue()) == {"already_sealed": 0, "missing": 0, "sealed": 2}
    sealed_now = objects(s3, s3["features"])
    assert sorted(sealed_now) == sorted(plain)  # same keys, so the rows are untouched
    for key, data in sealed_now.items():
        assert_ciphertext(data)
        assert sealed.plaintext(key) == plain[key]
    assert offline.read_view(view).num_rows == 6


def test_retention_purge_deletes_the_objects(
    s3,
    owner,
    view,
    django_capture_on_commit_callbacks,
):
    now = timezone.now().replace(microsecond=0)
    for when in (now - timedelta(days=100), now - timedelta(days=90), now - timedelta(days=2)):
        services.feature_view_ingest(view=view, actor=owner, data=[
            {"customer_id": k, "event_timestamp": iso(when + timedelta(hours=k)), "balance": 1.0, "orders": k,
             "segment": "gold", "email": f"c{k}@example.com"} for k in (0, 1)
        ])  # fmt: skip
    view = services.feature_view_update(view=view, actor=owner, retention_days=30)
    before = list(Partition.objects.filter(view=view).order_by("date").values_list("path", flat=True))
    assert sorted(objects(s3, s3["features"])) == sorted(before)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.feature_view_apply_retention(view=view, actor=owner)
    assert result["partitions"] == 2 and result["files"] == before[:2]
    # The two old objects are gone, and no empty "folder" object was left in their place.
    assert list(objects(s3, s3["features"])) == before[2:]
    assert offline.read_view(view).num_rows == 2


def test_a_view_pinned_to_eu_writes_to_the_eu_bucket(s3, settings, owner, customer):
    settings.PORTAL_REGION = "eu"
    view = make_view(owner, customer, "eu-stats", region="eu")
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    parts = sorted(view.partitions.values_list("path", flat=True))
    assert sorted(objects(s3, s3["features_eu"])) == parts and parts[0].startswith("eu/eu-stats/")
    assert objects(s3, s3["features"]) == {}
    assert offline.read_view(view).num_rows == 6
    ts = training_sets.training_set_create(actor=owner, name="eu-set", features=["eu-stats:email"], entity_rows=LABELS)
    assert ts.path in objects(s3, s3["features_eu"])


def test_the_encrypt_command_says_when_its_region_has_no_bucket(s3, settings, owner, customer):
    settings.PORTAL_REGION = "eu"
    view = make_view(owner, customer, "eu-stats", region="eu")
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    settings.FEATURE_STORE_S3_BUCKETS = {"default": s3["features"]}
    with pytest.raises(CommandError, match="add eu=<bucket> to FEATURE_STORE_S3_REGION_BUCKETS"):
        call_command("features_encrypt_pii", "--no-progress", stdout=io.StringIO())


def test_a_region_without_a_bucket_is_refused(s3, settings, owner, customer):
    settings.PORTAL_REGION = "apac"
    view = make_view(owner, customer, "apac-stats", region="apac")
    with pytest.raises(ResidencyError, match="FEATURE_STORE_S3_REGION_BUCKETS"):
        services.feature_view_ingest(view=view, actor=owner, data=rows())
    assert not Partition.objects.exists() and not VaultBlob.objects.filter(purpose=sealed.PURPOSE).exists()
    for bucket in ("features", "features_eu"):
        assert objects(s3, s3[bucket]) == {}
    with pytest.raises(ResidencyError, match="never stored in another region's bucket"):
        filestore.bucket_for("apac")


def _fail_after_the_files(monkeypatch, where: str) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("the database went away")

    if where == "rows":  # inside write_partitions' own transaction, after both objects were written
        original = Partition.objects.create
        calls = []

        def second_create_fails(**kwargs):
            calls.append(kwargs)
            return boom() if len(calls) == 2 else original(**kwargs)

        monkeypatch.setattr(Partition.objects, "create", second_create_fails)
    else:  # in the ingest's transaction once write_partitions has returned
        monkeypatch.setattr(services, "_refresh_statistics", boom)


@pytest.mark.parametrize("where", ["rows", "after"])
@pytest.mark.parametrize("store", ["s3", "local"])
def test_a_write_failing_inside_the_transaction_leaves_no_file(
    request, settings, owner, view, feature_store, monkeypatch, where, store
):
    if store == "s3":
        buckets = request.getfixturevalue("s3")
    _fail_after_the_files(monkeypatch, where)
    with pytest.raises(RuntimeError, match="went away"):
        services.feature_view_ingest(view=view, actor=owner, data=rows())
    assert not Partition.objects.exists() and not VaultBlob.objects.filter(purpose=sealed.PURPOSE).exists()
    assert local_files(feature_store) == []
    if store == "s3":
        assert objects(buckets, buckets["features"]) == {}


def test_the_s3_filesystem_follows_the_settings(s3, settings):
    first = filestore._s3()
    assert filestore._s3() is first  # cached per process and configuration
    settings.S3_ADDRESSING_STYLE = "virtual"
    assert filestore._s3() is not first
    settings.S3_ACCESS_KEY_ID = ""
    with pytest.raises(ConfigError, match="S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"):
        filestore._s3()
