"""Browser pages: list (search, query-count guard), detail (PII badges, masking), ingest, lookup, seed."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.models import AuditEntry
from apps.core.permissions import share
from apps.features import services
from apps.features.models import FeatureView, Partition
from tests.features.conftest import FEATURES


@pytest.fixture
def browser(client, owner):
    client.force_login(owner)
    return client


def test_list_search_and_query_count(browser, owner, customer):
    for i in range(12):
        services.feature_view_create(actor=owner, name=f"view-{i}", entity=customer, features=FEATURES)
    browser.get("/features/")  # warm: the session's user and roles are cached after the first request
    with CaptureQueriesContext(connection) as ctx:
        r = browser.get("/features/")
    assert r.status_code == 200 and b"view-11" in r.content and b"PII 1" in r.content
    few = len(ctx.captured_queries)
    services.feature_view_create(actor=owner, name="extra", entity=customer, features=FEATURES)
    with CaptureQueriesContext(connection) as ctx:
        browser.get("/features/")
    assert len(ctx.captured_queries) == few  # no per-row queries
    r = browser.get("/features/?q=view-3")
    assert b"view-3" in r.content and b"view-4" not in r.content


def test_detail_shows_schema_statistics_and_masks_pii(client, materialized, collaborator, owner):
    client.force_login(owner)
    r = client.get(f"/features/{materialized.name}/")
    assert r.status_code == 200 and b"PII</span>" in r.content and b"c1@example.com" in r.content
    assert b"stats-data" in r.content and b"/ws/feature-views/" in r.content and b"succeeded" in r.content
    assert AuditEntry.objects.filter(additional_data__event="features.pii_preview").count() == 1
    share(materialized, role="viewer", user=collaborator)
    client.force_login(collaborator)
    r = client.get(f"/features/{materialized.name}/")
    assert r.status_code == 200 and b"c1@example.com" not in r.content and b"***" in r.content
    assert b"PII: values are never shown in statistics" in r.content


def test_stranger_gets_404_on_every_page(client, ingested, stranger):
    client.force_login(stranger)
    for url in ("", "ingest/"):
        assert client.get(f"/features/{ingested.name}/{url}").status_code == 404
    assert client.post(f"/features/{ingested.name}/materialize/", {}).status_code == 404


def test_ingest_form_upload_and_refusal(browser, view):
    good = io.BytesIO(b"customer_id,event_timestamp,balance,orders,segment,email\n1,2024-05-01T00:00:00Z,1,1,a,\n")
    good.name = "good.csv"
    r = browser.post(f"/features/{view.name}/ingest/", {"file": good})
    assert r.status_code == 302 and Partition.objects.count() == 1
    bad = io.BytesIO(b"customer_id,event_timestamp,balance,orders,segment,email\n1,2024-05-01,x,1,a,\n")
    bad.name = "bad.csv"
    r = browser.post(f"/features/{view.name}/ingest/", {"file": bad})
    assert r.status_code == 200 and b"row 1, column balance" in r.content and Partition.objects.count() == 1


def test_create_entity_and_view_forms(browser):
    r = browser.post("/features/entities/new/", {"name": "shop", "join_keys": "shop_id:string"})
    assert r.status_code == 302
    r = browser.post("/features/new/", {"name": "shop-sales", "entity": "shop", "features": "revenue:float64:-:daily\nowner_name:string:pii",
                                        "region": "default", "ttl_seconds": 0, "source": "batch", "tags": "retail"})  # fmt: skip
    assert r.status_code == 302, r.context["form"].errors
    view = FeatureView.objects.get(name="shop-sales")
    assert view.pii_features == ["owner_name"] and view.entity.key_names == ["shop_id"]
    r = browser.post("/features/new/", {"name": "x", "entity": "shop", "features": "a:decimal", "region": "default",
                                        "ttl_seconds": 0, "source": "batch"})  # fmt: skip
    assert r.status_code == 200 and b"dtype one of" in r.content


def test_lookup_tester(browser, materialized):
    r = browser.post(
        "/features/lookup/", {"features": "customer-stats:balance", "keys": "1,42", "key_names": "customer_id"}
    )
    assert r.status_code == 200 and b"101.0" in r.content and b"missing" in r.content
    r = browser.post("/features/lookup/", {"features": "nope:x", "keys": "1", "key_names": "customer_id"})
    assert r.status_code == 200 and b"No feature view" in r.content


def test_materialize_form_queues_a_job(browser, ingested, django_capture_on_commit_callbacks):
    r = browser.post(
        f"/features/{ingested.name}/materialize/", {"start": "2024-04-01T00:00", "end": "2024-06-01T00:00"}
    )
    assert r.status_code == 302 and ingested.materializations.count() == 1


def test_dashboard_cards(owner, materialized):
    from apps.features.dashboard import cards

    got = cards(owner)
    assert got[0]["value"] == 1 and got[1]["value"] == "customer-stats"


def test_seed_is_idempotent(owner, team, settings):
    import sys

    from apps.features import seed
    from apps.features.models import TrainingSet

    out = io.StringIO()
    seed.seed(users={"steward": owner}, team=team, out=out)
    seed.seed(users={"steward": owner}, team=team, out=out)
    assert FeatureView.objects.count() == 2 and TrainingSet.objects.count() == 2
    view = FeatureView.objects.get(name="wine-chemistry")
    assert view.row_count >= 178 and view.last_materialized_at and "exists" in out.getvalue()
    assert sys.modules.get("sklearn") is not None
