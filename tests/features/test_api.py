"""REST API: create/list/detail, ingest formats, materialize, training sets, validation, strangers."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apps.core.errors import IntegrityFailure
from apps.core.permissions import share
from apps.features import services, training_sets
from apps.features.models import Partition, TrainingSet
from tests.conftest import api_client_for
from tests.features.conftest import FEATURES, rows
from tests.permissions import StrangerDeniedMixin


class TestEntityStranger(StrangerDeniedMixin):
    list_url = "/api/v1/entities/"

    def make_object(self, owner):
        return services.entity_create(actor=owner, name="patient", join_keys=[{"name": "pid", "dtype": "string"}])

    def detail_url(self, obj):
        return f"/api/v1/entities/{obj.name}/"


class TestFeatureViewStranger(StrangerDeniedMixin):
    list_url = "/api/v1/feature-views/"
    change_payload = {"description": "hijacked"}

    def make_object(self, owner):
        entity = services.entity_create(actor=owner, name="patient", join_keys=[{"name": "pid", "dtype": "string"}])
        return services.feature_view_create(actor=owner, name="vitals", entity=entity, features=FEATURES[:2])

    def detail_url(self, obj):
        return f"/api/v1/feature-views/{obj.name}/"

    def extra_urls(self, obj):
        return [f"/api/v1/feature-views/{obj.name}/materialize"]

    def test_stranger_cannot_write_data(self, stranger, target):
        client = api_client_for(stranger)
        base = f"/api/v1/feature-views/{target.name}"
        assert client.post(f"{base}/ingest", [{"pid": "a"}], format="json").status_code == 404
        assert client.post(f"{base}/push", [{"pid": "a"}], format="json").status_code == 404
        body = {"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"}
        assert client.post(f"{base}/materialize", body, format="json").status_code == 404
        body = {
            "name": "steal",
            "features": ["vitals:balance"],
            "entity_rows": [{"pid": "a", "event_timestamp": "2024-01-01"}],
        }
        assert client.post("/api/v1/training-sets/", body, format="json").status_code == 404
        assert Partition.objects.count() == 0 and TrainingSet.objects.count() == 0


class TestTrainingSetStranger(StrangerDeniedMixin):
    list_url = "/api/v1/training-sets/"

    def make_object(self, owner):
        entity = services.entity_create(actor=owner, name="patient", join_keys=[{"name": "pid", "dtype": "string"}])
        view = services.feature_view_create(actor=owner, name="vitals", entity=entity, features=FEATURES[:1])
        return (
            training_sets.training_set_create(
                actor=owner,
                name="ts",
                features=["vitals:balance"],
                entity_rows=[{"pid": "a", "event_timestamp": "2024-01-01"}],
            )
            if view
            else None
        )

    def detail_url(self, obj):
        return f"/api/v1/training-sets/{obj.pk}/"


def test_create_entity_and_view_through_the_api(api_owner):
    r = api_owner.post("/api/v1/entities/", {"name": "customer", "join_keys": [{"name": "customer_id", "dtype": "int64"}]},
                       format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    body = {
        "name": "customer-stats",
        "entity": "customer",
        "features": FEATURES,
        "ttl_seconds": 86400,
        "tags": ["risk"],
    }
    r = api_owner.post("/api/v1/feature-views/", body, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["version"] == 1 and r.json()["features"][3]["pii"] is True
    assert api_owner.get("/api/v1/feature-views/?q=balance").json()["count"] == 1
    assert api_owner.get("/api/v1/feature-views/?q=zzz").json()["count"] == 0
    r = api_owner.patch("/api/v1/feature-views/customer-stats/", {"features": FEATURES[:2]}, format="json")
    assert r.status_code == 200 and r.json()["version"] == 2


@pytest.mark.parametrize(
    "url,body,field",
    [
        ("/api/v1/entities/", {"name": "Bad Name", "join_keys": [{"name": "id", "dtype": "int64"}]}, "name"),
        ("/api/v1/entities/", {"name": "e", "join_keys": [{"name": "id", "dtype": "float64"}]}, "join_keys"),
        ("/api/v1/entities/", {"name": "e", "join_keys": "id"}, "join_keys"),
        (
            "/api/v1/feature-views/",
            {"name": "v", "entity": "customer", "features": [{"name": "x", "dtype": "map"}]},
            "features",
        ),
        (
            "/api/v1/feature-views/",
            {"name": "v", "entity": "customer", "features": [{"name": "customer_id", "dtype": "int64"}]},
            "features",
        ),
        (
            "/api/v1/feature-views/",
            {"name": "v", "entity": "customer", "features": FEATURES, "ttl_seconds": -1},
            "ttl_seconds",
        ),
        (
            "/api/v1/feature-views/",
            {"name": "v", "entity": "customer", "features": FEATURES, "region": "EU WEST"},
            "region",
        ),
        ("/api/v1/feature-views/", {"name": "v", "entity": "customer", "features": FEATURES, "tags": "x"}, "tags"),
    ],
)
def test_validation_errors_are_400_json(api_owner, customer, url, body, field):
    r = api_owner.post(url, body, format="json")
    assert r.status_code == 400 and field in r.json(), r.content


def test_roles_decide_who_may_create(collaborator, customer):
    r = api_client_for(collaborator).post("/api/v1/entities/", {"name": "x", "join_keys": [{"name": "id", "dtype": "int64"}]},
                                          format="json")  # fmt: skip
    assert r.status_code == 403


def test_ingest_json_csv_parquet_and_multipart(api_owner, view):
    url = f"/api/v1/feature-views/{view.name}/ingest"
    assert api_owner.post(url, rows(2, 1), format="json").status_code == 201
    csv = b"customer_id,event_timestamp,balance,orders,segment,email\n5,2024-05-03T00:00:00Z,1,1,a,\n"
    r = api_owner.generic("POST", url, csv, content_type="text/csv")
    assert r.status_code == 201 and r.json()["rows"] == 1, r.content
    buf = io.BytesIO()
    pq.write_table(pa.table({"customer_id": [6], "event_timestamp": ["2024-05-04"], "balance": [2.0], "orders": [2],
                             "segment": ["b"], "email": ["e"]}), buf)  # fmt: skip
    r = api_owner.generic("POST", url, buf.getvalue(), content_type="application/vnd.apache.parquet")
    assert r.status_code == 201, r.content
    upload = io.BytesIO(csv.replace(b"5,", b"7,"))
    upload.name = "more.csv"
    assert api_owner.post(url, {"file": upload}, format="multipart").status_code == 201
    assert api_owner.get(f"/api/v1/feature-views/{view.name}/").json()["row_count"] == 5


def test_ingest_refusal_is_400_with_rows(api_owner, view, feature_store):
    bad = rows(1, 2)
    bad[1]["balance"] = "lots"
    r = api_owner.post(f"/api/v1/feature-views/{view.name}/ingest", bad, format="json")
    assert r.status_code == 400 and r.json()["rows"] == ["row 2, column balance: 'lots' is not a number"]
    assert not any(p.is_file() for p in feature_store.rglob("*"))


def test_viewer_gets_403_on_ingest_and_masked_statistics(api_owner, ingested, collaborator):
    share(ingested, role="viewer", user=collaborator)
    client = api_client_for(collaborator)
    assert client.post(f"/api/v1/feature-views/{ingested.name}/ingest", rows(), format="json").status_code == 403
    body = client.get(f"/api/v1/feature-views/{ingested.name}/").json()
    assert body["statistics"]["email"] == {"count": 6, "nulls": 0, "distinct": 3, "pii": True}
    assert body["statistics"]["balance"]["max"] == 201.0 and body["can_view_pii"] is False


def test_materialize_endpoint_queues_a_job(api_owner, ingested, django_capture_on_commit_callbacks):
    body = {"start": "2024-04-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}
    with django_capture_on_commit_callbacks() as callbacks:
        r = api_owner.post(f"/api/v1/feature-views/{ingested.name}/materialize", body, format="json")
    assert r.status_code == 202 and r.json()["state"] == "queued" and r.json()["queue"] == "default"
    assert len(callbacks) >= 1
    bad = api_owner.post(f"/api/v1/feature-views/{ingested.name}/materialize", {"start": body["end"], "end": body["start"]},
                         format="json")  # fmt: skip
    assert bad.status_code == 400
    assert api_owner.get(f"/api/v1/feature-views/{ingested.name}/materialize").json()[0]["id"] == r.json()["id"]


def test_training_set_from_json_and_csv(api_owner, ingested, owner):
    labels = [{"customer_id": 1, "event_timestamp": "2024-05-01T00:30:00Z", "label": 1},  # before its first value
              {"customer_id": 1, "event_timestamp": "2024-05-01T01:00:00Z", "label": 0},  # equal timestamp
              {"customer_id": 2, "event_timestamp": "2024-06-01T00:00:00Z", "label": 1}]  # fmt: skip
    body = {"name": "churn", "features": ["customer-stats:balance", "customer-stats:orders"], "entity_rows": labels}
    r = api_owner.post("/api/v1/training-sets/", body, format="json")
    assert r.status_code == 201, r.content
    ts = TrainingSet.objects.get(pk=r.json()["id"])
    table = training_sets.training_set_load(ts, actor=owner)
    assert table.column("balance").to_pylist() == [None, 100.0, 201.0]
    assert table.column("label").to_pylist() == [1, 0, 1]
    assert ts.lineage["views"][0]["name"] == "customer-stats" and len(ts.digest) == 64
    csv = io.BytesIO(b"customer_id,event_timestamp,label\n0,2024-05-02T00:00:00Z,1\n")
    csv.name = "labels.csv"
    r = api_owner.post("/api/v1/training-sets/", {"name": "churn-csv", "features": "customer-stats:balance",
                                                  "entity_table": csv}, format="multipart")  # fmt: skip
    assert r.status_code == 201 and r.json()["row_count"] == 1, r.content


def test_training_set_errors(api_owner, ingested):
    base = {"name": "t", "features": ["customer-stats:balance"]}
    r = api_owner.post(
        "/api/v1/training-sets/", {**base, "entity_rows": [{"event_timestamp": "2024-01-01"}]}, format="json"
    )
    assert r.status_code == 400 and "customer_id" in str(r.json())
    r = api_owner.post("/api/v1/training-sets/", {**base, "entity_rows": [{"customer_id": 1, "event_timestamp": "soon"}]},
                       format="json")  # fmt: skip
    assert r.status_code == 400 and "row 1, column event_timestamp" in str(r.json())
    r = api_owner.post("/api/v1/training-sets/", base, format="json")
    assert r.status_code == 400


def test_pii_training_set_needs_view_pii(ingested, collaborator, owner):
    share(ingested, role="viewer", user=collaborator)
    client = api_client_for(collaborator)
    body = {
        "name": "t",
        "features": ["customer-stats:email"],
        "entity_rows": [{"customer_id": 1, "event_timestamp": "2024-06-01"}],
    }
    assert client.post("/api/v1/training-sets/", body, format="json").status_code == 403
    r = api_client_for(owner).post("/api/v1/training-sets/", body, format="json")
    assert r.status_code == 201
    from apps.core.models import AuditEntry

    assert AuditEntry.objects.filter(additional_data__event="features.pii_training_set").count() == 1


def test_tampered_training_set_is_refused(ingested, owner, feature_store):
    ts = training_sets.training_set_create(actor=owner, name="t", features=["customer-stats:balance"],
                                           entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}])  # fmt: skip
    (feature_store / ts.path).write_bytes(b"PAR1 changed")
    with pytest.raises(IntegrityFailure, match="digest"):
        training_sets.training_set_load(ts)


def test_anonymous_gets_401_on_online(client):
    assert client.post("/api/v1/features/online", {}, content_type="application/json").status_code == 401
