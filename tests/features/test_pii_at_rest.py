"""PII at rest (issue 17): offline-store files of views with PII features and training sets with a PII
column are sealed with the vault's key ring, and every reader opens them transparently; files
without PII stay plain Parquet. Older plain files are sealed on the next write or by
`manage.py features_encrypt_pii`; a key rotation re-wraps their keys."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from apps.core import crypto, vault
from apps.core.errors import IntegrityFailure
from apps.core.models import VaultBlob
from apps.features import offline, sealed, services, training_sets
from tests.conftest import api_client_for
from tests.features.conftest import FEATURES, T0, rows

pytestmark = pytest.mark.django_db
SECRET = b"c1@example.com"
LABELS = [
    {"customer_id": 1, "event_timestamp": "2024-06-01T00:00:00Z", "label": 1},
    {"customer_id": 2, "event_timestamp": "2024-06-01T00:00:00Z", "label": 0},
]
PLAIN_FEATURES = [{**f, "pii": False} for f in FEATURES]


def partition_files(view) -> list[Path]:
    return [offline.store_root() / p for p in view.partitions.values_list("path", flat=True)]


def assert_sealed(path: Path) -> None:
    data = path.read_bytes()
    assert SECRET not in data and b"example.com" not in data
    assert data[:4] == crypto.MAGIC and data[:4] != b"PAR1"
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(path)


def test_a_pii_views_partitions_are_sealed_and_every_reader_sees_the_values(ingested, owner, client):
    files = partition_files(ingested)
    assert len(files) == 2
    for path in files:
        assert_sealed(path)
    assert VaultBlob.objects.filter(purpose=sealed.PURPOSE).count() == 2
    emails = sorted(offline.read_view(ingested).column("email").to_pylist())
    assert emails == sorted(f"c{k}@example.com" for k in range(3) for _ in range(2))
    client.force_login(owner)  # the page's preview reads the offline store
    assert SECRET in client.get(f"/features/{ingested.name}/").content


def test_materialization_reads_sealed_partitions(materialized, owner):
    body = {"features": ["customer-stats:email"], "entities": {"customer_id": [1]}}
    response = api_client_for(owner).post("/api/v1/features/online", body, format="json")
    assert response.status_code == 200, response.content
    assert json.dumps(response.json()).count("c1@example.com") == 1


def test_views_without_pii_stay_plain_parquet(owner, customer):
    view = services.feature_view_create(actor=owner, name="plain-stats", entity=customer, features=PLAIN_FEATURES)
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    for path in partition_files(view):
        assert path.read_bytes()[:4] == b"PAR1" and pq.read_table(path).num_rows > 0
    assert not VaultBlob.objects.filter(purpose=sealed.PURPOSE).exists()


def test_a_pii_training_set_is_sealed_and_its_data_api_returns_the_values(ingested, owner, feature_store):
    ts = training_sets.training_set_create(
        actor=owner, name="churn", features=["customer-stats:balance", "customer-stats:email"], entity_rows=LABELS
    )
    assert_sealed(feature_store / ts.path)
    response = api_client_for(owner).get(f"/api/v1/training-sets/{ts.pk}/data?format=json")
    assert response.status_code == 200
    assert [r["email"] for r in json.loads(b"".join(response.streaming_content))] == [
        "c1@example.com",
        "c2@example.com",
    ]
    assert training_sets.training_set_load(ts, actor=owner).column("email").to_pylist()[0] == "c1@example.com"
    with training_sets.training_set_local_file(ts) as local:  # batch scoring's reader
        assert pq.read_table(local).num_rows == 2 and local != feature_store / ts.path
    assert not local.exists()


def test_a_training_set_without_pii_columns_stays_plain(ingested, owner, feature_store):
    ts = training_sets.training_set_create(
        actor=owner, name="plain", features=["customer-stats:balance"], entity_rows=LABELS
    )
    assert pq.read_table(feature_store / ts.path).column("balance").to_pylist() == [101.0, 201.0]


def test_tampering_with_a_sealed_partition_is_refused(ingested):
    path = partition_files(ingested)[0]
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityFailure):
        offline.read_view(ingested)


def _plain_view_then_flag_pii(owner, customer):
    view = services.feature_view_create(actor=owner, name="late-pii", entity=customer, features=PLAIN_FEATURES)
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    view = services.feature_view_update(view=view, actor=owner, features=FEATURES)
    assert view.version == 1 and view.pii_features == ["email"]
    return view


def test_plain_files_of_a_view_that_gained_pii_are_sealed_on_its_next_write(
    owner, customer, django_capture_on_commit_callbacks
):
    view = _plain_view_then_flag_pii(owner, customer)
    old = partition_files(view)
    assert all(p.read_bytes()[:4] == b"PAR1" for p in old)
    assert offline.read_view(view).num_rows == 6  # plain files still read
    with django_capture_on_commit_callbacks(execute=True):  # sealed in place once the write commits
        services.feature_view_ingest(view=view, actor=owner, data=rows(start=T0.replace(month=7)))
    files = partition_files(view)
    assert len(files) == 4 and set(old) <= set(files)
    for path in files:
        assert_sealed(path)
    assert offline.read_view(view).num_rows == 12


def test_the_encrypt_command_seals_old_files_once(owner, customer, ingested, django_capture_on_commit_callbacks):
    view = _plain_view_then_flag_pii(owner, customer)
    ts = training_sets.training_set_create(
        actor=owner, name="mixed", features=["customer-stats:email"], entity_rows=LABELS
    )
    plain_set = offline.store_root() / ts.path
    # a set written before sealing existed: the same rows, plain, with the same digest
    plain_set.write_bytes(sealed.plaintext(ts.path))
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("features_encrypt_pii", "--no-progress", stdout=out)
    assert json.loads(out.getvalue()) == {"already_sealed": 2, "missing": 0, "sealed": 3}
    for path in [*partition_files(view), plain_set]:
        assert_sealed(path)
    assert offline.read_view(view).num_rows == 6
    assert training_sets.training_set_load(ts, actor=owner).num_rows == 2
    out = io.StringIO()
    call_command("features_encrypt_pii", "--no-progress", stdout=out)
    assert json.loads(out.getvalue())["sealed"] == 0


def test_a_key_rotation_rewraps_sealed_files_keys(ingested, settings):
    first = base64.b64encode(os.urandom(32)).decode()
    settings.VAULT_KEYRING = f"old:{first}"
    view = services.feature_view_create(actor=ingested.owner, name="rotated", entity=ingested.entity, features=FEATURES)
    services.feature_view_ingest(view=view, actor=ingested.owner, data=rows())
    keys = VaultBlob.objects.filter(purpose=sealed.PURPOSE, storage_key__contains="/rotated/")
    assert set(keys.values_list("kid", flat=True)) == {"old"}
    settings.VAULT_KEYRING = f"new:{base64.b64encode(os.urandom(32)).decode()},old:{first}"
    vault.keys_rotate(generate=False)
    assert set(keys.values_list("kid", flat=True)) == {"new"}
    settings.VAULT_KEYRING = settings.VAULT_KEYRING.split(",")[0]  # the old master key is gone
    assert offline.read_view(view).num_rows == 6
