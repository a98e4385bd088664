"""List endpoints and list pages ask the database the same number of times for 5 rows as for 50."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.permissions import grant_owner
from apps.features import services
from apps.features.models import TrainingSet
from tests.conftest import api_client_for
from tests.conftest import page_client_for as browser
from tests.features.conftest import FEATURES

pytestmark = pytest.mark.django_db


def queries(client, url: str, expect: bytes) -> int:
    client.get(url)  # warm: a token's first use of the minute records it, sessions load once
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200 and expect in response.content
    return len(ctx.captured_queries)


def views(owner, customer, start: int, stop: int) -> None:
    for i in range(start, stop):
        services.feature_view_create(actor=owner, name=f"view-{i}", entity=customer, features=FEATURES, tags=["t"])


def entities(owner, start: int, stop: int) -> None:
    for i in range(start, stop):
        services.entity_create(actor=owner, name=f"entity-{i}", join_keys=[{"name": "id", "dtype": "int64"}])


def sets(owner, start: int, stop: int) -> None:
    for i in range(start, stop):
        ts = TrainingSet.objects.create(
            name=f"set-{i}", features=["v:a"], path=f"s{i}.parquet", columns=["a"], entity_digest="0" * 64,
            digest="0" * 64, lineage={}, owner=owner,
        )  # fmt: skip
        grant_owner(ts)


def test_feature_view_list_api_and_page_queries_do_not_grow_with_rows(owner, customer):
    api, page = api_client_for(owner), browser(owner)
    views(owner, customer, 0, 5)
    few = (queries(api, "/api/v1/feature-views/?tag=t", b"view-4"), queries(page, "/features/", b"view-4"))
    views(owner, customer, 5, 50)
    many = (queries(api, "/api/v1/feature-views/?tag=t", b"view-49"), queries(page, "/features/", b"view-24"))
    assert many == few


def test_entity_list_api_queries_do_not_grow_with_rows(owner):
    api = api_client_for(owner)
    entities(owner, 0, 5)
    few = queries(api, "/api/v1/entities/", b"entity-4")
    entities(owner, 5, 50)
    assert queries(api, "/api/v1/entities/", b"entity-49") == few


def test_training_set_list_api_and_page_queries_do_not_grow_with_rows(owner, view):
    api, page = api_client_for(owner), browser(owner)
    sets(owner, 0, 5)
    few = (queries(api, "/api/v1/training-sets/", b"set-4"), queries(page, "/features/training-sets/", b"set-4"))
    sets(owner, 5, 50)
    many = (queries(api, "/api/v1/training-sets/", b"set-49"), queries(page, "/features/training-sets/", b"set-49"))
    assert many == few


def entities_with_views(owner, start: int, stop: int) -> None:
    for i in range(start, stop):
        entity = services.entity_create(actor=owner, name=f"entity-{i}", join_keys=[{"name": "id", "dtype": "int64"}])
        for j in range(2):
            services.feature_view_create(
                actor=owner, name=f"entity-{i}-view-{j}", entity=entity, features=[{"name": "x", "dtype": "int64"}]
            )


def test_entity_list_page_queries_do_not_grow_with_rows(owner):
    page = browser(owner)
    entities_with_views(owner, 0, 5)
    few = queries(page, "/features/entities/", b"entity-4-view-1")
    entities_with_views(owner, 5, 50)
    assert queries(page, "/features/entities/", b"entity-30-view-1") == few
