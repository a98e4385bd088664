"""No 5xx for bad input on the feature store's endpoints: odd filter values, bodies that are not
objects, and lone surrogates (JSON "\\ud800") anywhere in names, keys or values answer 400 JSON.

The suite also runs on PostgreSQL in CI, so the filter tests check the SQL there too."""

from __future__ import annotations

import json

import pytest

from apps.features import services
from apps.features.models import TrainingSet
from tests.conftest import api_client_for
from tests.features.conftest import FEATURES, rows
from tests.features.test_online import fast

pytestmark = pytest.mark.django_db
SURROGATE = "\ud800"
NOT_OBJECTS = ["false", "null", "[]", '"x"', "1"]


@pytest.fixture
def api(owner):
    client = api_client_for(owner)
    client.raise_request_exception = False  # a 500 is a result to assert on, not a test crash
    return client


def post_raw(client, url: str, text: str, method: str = "POST"):
    """`text` is sent as the JSON body verbatim (json.dumps keeps lone surrogates as \\ud800 escapes)."""
    return client.generic(method, url, text.encode(), content_type="application/json")


def assert_400_json(response):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def test_tag_filter_matches_whole_tags_on_this_database(api, owner, customer):
    for name, tags in (("a", ["pii"]), ("b", ["pii-free", "risk"]), ("c", ["not-pii"]), ("d", [])):
        services.feature_view_create(actor=owner, name=name, entity=customer, features=FEATURES, tags=tags)
    response = api.get("/api/v1/feature-views/?tag=pii")
    assert response.status_code == 200
    assert [v["name"] for v in response.json()["results"]] == ["a"]
    assert [v["name"] for v in api.get("/api/v1/feature-views/?tag=risk").json()["results"]] == ["b"]


@pytest.mark.parametrize("name", ["q", "tag", "entity", "region", "owner", "source"])
@pytest.mark.parametrize("value", ["pii", '"', "%", "_", "\\", "[1]", '{"a":1}', "%ED%A0%80", "x" * 5000])
def test_feature_view_filters_never_fail_on_odd_values(api, view, name, value):
    response = api.get(f"/api/v1/feature-views/?{name}={value}")
    assert response.status_code in (200, 400), (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("body", NOT_OBJECTS)
def test_training_set_create_refuses_a_body_that_is_not_an_object(api, body):
    assert "detail" in assert_400_json(post_raw(api, "/api/v1/training-sets/", body))


@pytest.mark.parametrize("body", NOT_OBJECTS)
@pytest.mark.parametrize(
    "method, url",
    [
        ("POST", "/api/v1/entities/"),
        ("POST", "/api/v1/feature-views/"),
        ("PATCH", "/api/v1/feature-views/customer-stats/"),
        ("POST", "/api/v1/feature-views/customer-stats/materialize"),
        ("POST", "/api/v1/feature-views/customer-stats/sharing"),
        ("POST", "/api/v1/features/online"),
        ("POST", "/api/v1/entities/customer/sharing"),
    ],
)
def test_every_feature_endpoint_refuses_a_body_that_is_not_an_object(api, view, method, url, body):
    assert_400_json(post_raw(api, url, body, method))


@pytest.mark.parametrize("body", NOT_OBJECTS)
def test_ingest_and_push_refuse_a_body_that_is_neither_rows_nor_a_file(api, owner, view, body):
    assert_400_json(post_raw(api, f"/api/v1/feature-views/{view.name}/ingest", body))
    services.feature_view_update(view=view, actor=owner, source="push")
    assert_400_json(post_raw(api, f"/api/v1/feature-views/{view.name}/push", body))


ONLINE_WITH_SURROGATES = {
    "feature name": {"features": [f"customer-stats:{SURROGATE}"], "entities": {"customer_id": [1]}},
    "view name": {"features": [f"{SURROGATE}:balance"], "entities": {"customer_id": [1]}},
    "whole reference": {"features": [SURROGATE], "entities": {"customer_id": [1]}},
    "join key name": {"features": ["customer-stats:balance"], "entities": {SURROGATE: [1], "customer_id": [1]}},
    "join key value": {"features": ["customer-stats:balance"], "entities": {"customer_id": [SURROGATE]}},
}


@pytest.mark.parametrize("where", ONLINE_WITH_SURROGATES)
def test_lone_surrogate_in_an_online_read_is_a_400_json_on_the_lean_path(materialized, owner, where):
    status, body = fast(owner, None, raw=json.dumps(ONLINE_WITH_SURROGATES[where]).encode())
    assert status == 400 and body


@pytest.mark.parametrize("where", ONLINE_WITH_SURROGATES)
def test_lone_surrogate_in_an_online_read_is_a_400_json_through_django(api, materialized, where):
    assert_400_json(post_raw(api, "/api/v1/features/online", json.dumps(ONLINE_WITH_SURROGATES[where])))


def test_lone_surrogate_in_a_string_join_key_value_is_refused(api, owner):
    entity = services.entity_create(actor=owner, name="shop", join_keys=[{"name": "shop_id", "dtype": "string"}])
    services.feature_view_create(actor=owner, name="shops", entity=entity, features=[{"name": "x", "dtype": "int64"}])
    body = {"features": ["shops:x"], "entities": {"shop_id": ["ok", SURROGATE]}}
    assert_400_json(post_raw(api, "/api/v1/features/online", json.dumps(body)))
    assert fast(owner, None, raw=json.dumps(body).encode())[0] == 400


def surrogate_rows(where: str) -> list[dict]:
    data = rows(n_keys=2, per_key=1)
    if where == "value":
        data[1]["segment"] = f"gold{SURROGATE}"
    elif where == "column name":
        data[1][SURROGATE] = 1
    else:  # a value in a typed column
        data[1]["orders"] = SURROGATE
    return data


@pytest.mark.parametrize("where", ["value", "column name", "typed value"])
def test_lone_surrogate_in_ingested_rows_is_refused_and_nothing_is_written(api, view, feature_store, where):
    response = post_raw(api, f"/api/v1/feature-views/{view.name}/ingest", json.dumps(surrogate_rows(where)))
    assert "surrogate" in json.dumps(assert_400_json(response))
    assert not any(p.is_file() for p in feature_store.rglob("*"))


@pytest.mark.parametrize("where", ["value", "column name", "typed value"])
def test_lone_surrogate_in_pushed_rows_is_refused(api, owner, view, where):
    services.feature_view_update(view=view, actor=owner, source="push")
    response = post_raw(api, f"/api/v1/feature-views/{view.name}/push", json.dumps(surrogate_rows(where)))
    assert "surrogate" in json.dumps(assert_400_json(response))


@pytest.mark.parametrize(
    "body",
    [
        {"features": [f"{SURROGATE}:balance"]},
        {"features": ["customer-stats:balance"], "rows": [{SURROGATE: 1}]},
        {"features": ["customer-stats:balance"], "rows": [{"label": SURROGATE}]},
        {"features": ["customer-stats:balance"], "rows": [{"label": {"nested": SURROGATE}}]},
        {"features": ["customer-stats:balance"], "name": f"set{SURROGATE}"},
    ],
    ids=["reference", "label name", "label value", "nested label value", "set name"],
)
def test_lone_surrogate_in_a_training_set_request_is_refused(api, ingested, body):
    entity_rows = [{"customer_id": 1, "event_timestamp": "2024-06-01", **row} for row in body.get("rows", [{}])]
    payload = {"name": body.get("name", "s1"), "features": body["features"], "entity_rows": entity_rows}
    assert_400_json(post_raw(api, "/api/v1/training-sets/", json.dumps(payload)))
    assert not TrainingSet.objects.exists()


# The API's JSON parser refuses lone surrogates before a view runs; pages, the lean path and
# in-process callers reach the services directly, so the services refuse them too.


@pytest.mark.parametrize("where", ["value", "column name"])
def test_lone_surrogate_in_rows_pasted_on_the_ingest_page_is_a_form_error(owner, view, feature_store, where):
    from tests.conftest import page_client_for

    pasted = json.dumps(surrogate_rows(where))  # JSON text: the surrogate arrives as a \ud800 escape
    response = page_client_for(owner).post(f"/features/{view.name}/ingest/", {"rows": pasted})
    assert response.status_code == 200 and b"lone surrogate" in response.content
    assert not any(p.is_file() for p in feature_store.rglob("*"))


@pytest.mark.parametrize("where", ["value", "column name"])
def test_lone_surrogate_in_pushed_rows_is_refused_by_the_service(owner, view, where):
    from django.core.exceptions import ValidationError

    view = services.feature_view_update(view=view, actor=owner, source="push")
    with pytest.raises(ValidationError, match="lone surrogate"):
        services.feature_view_push(view=view, actor=owner, data=surrogate_rows(where))


@pytest.mark.parametrize("label", [{SURROGATE: 1}, {"label": SURROGATE}])
def test_lone_surrogate_in_entity_rows_is_refused_by_the_training_set_service(owner, ingested, label):
    from django.core.exceptions import ValidationError

    from apps.features import training_sets

    entity_rows = [{"customer_id": 1, "event_timestamp": "2024-06-01", **label}]
    with pytest.raises(ValidationError, match="lone surrogate"):
        training_sets.training_set_create(
            actor=owner, name="s1", features=["customer-stats:balance"], entity_rows=entity_rows
        )
