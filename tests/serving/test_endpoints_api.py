"""/api/v1/endpoints/ (list, create), /api/v1/endpoints/{name}/ (GET, PATCH) and .../traffic."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.catalog import services as catalog
from apps.serving import histogram
from apps.serving.models import Canary, Route, TrafficWindow
from tests.conftest import api_client_for, page_client_for, share_as
from tests.listcost import list_cost
from tests.serving.conftest import make_endpoint, rows, version_of

pytestmark = pytest.mark.django_db

LIST = "/api/v1/endpoints/"


def body(**overrides) -> dict:
    return {
        "name": "fraud-api",
        "region": "default",
        "routes": [
            {"name": "main", "model": "fraud-score", "alias": "staging", "weight": 100, "mode": "live"},
            {"name": "shadow", "model": "fraud-score", "version": 2, "weight": 50, "mode": "shadow"},
        ],
        **overrides,
    }


def test_create_answers_201_with_routes_and_the_version_each_serves(owner, scorer):
    response = api_client_for(owner).post(LIST, body(description="Card fraud"), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["name"] == "fraud-api" and data["owner"] == "owner" and data["description"] == "Card fraud"
    assert data["routes"] == [
        {"name": "main", "model": "fraud-score", "version": None, "alias": "staging", "weight": 100,
         "mode": "live", "serving_version": 1},
        {"name": "shadow", "model": "fraud-score", "version": 2, "alias": None, "weight": 50,
         "mode": "shadow", "serving_version": 2},
    ]  # fmt: skip
    assert data["log_sample_rate"] == pytest.approx(0.1) and data["team"] is None and data["archived"] is False


def test_live_weights_not_summing_to_100_is_a_400_naming_the_sum(owner, scorer):
    routes = [
        {"name": "a", "model": "fraud-score", "version": 1, "weight": 60},
        {"name": "b", "model": "fraud-score", "version": 2, "weight": 30},
    ]
    response = api_client_for(owner).post(LIST, body(routes=routes), format="json")
    assert response.status_code == 400
    assert "sum to 90" in response.json()["routes"][0]


def test_bad_route_fields_are_reported_by_position(owner, scorer):
    routes = [
        {"name": "a", "model": "fraud-score", "version": 1, "weight": 100},
        {"name": "b", "model": "fraud-score", "version": 2, "alias": "staging", "weight": 101, "colour": "red"},
    ]
    response = api_client_for(owner).post(LIST, body(routes=routes), format="json")
    assert response.status_code == 400
    errors = response.json()["routes"]
    assert errors == {"1": {"colour": ["Unknown field."]}}  # DRF keys list items by position


def test_a_model_the_caller_cannot_see_is_refused_like_a_missing_one(owner, stranger, scorer):
    client = api_client_for(stranger)
    hidden = client.post(LIST, body(), format="json")
    missing = client.post(LIST, body(routes=[{"name": "main", "model": "no-such-model", "version": 1}]), format="json")
    assert hidden.status_code == missing.status_code == 400
    assert "that you can see" in hidden.json()["routes"][0] and "that you can see" in missing.json()["routes"][0]


def test_unknown_body_field_and_fixed_route_name_are_400(owner, scorer):
    client = api_client_for(owner)
    assert client.post(LIST, body(colour="red"), format="json").json() == {"colour": ["Unknown field."]}
    assert "name" in client.post(LIST, body(name="new"), format="json").json()


def test_list_shows_only_visible_endpoints_and_filters(owner, stranger, scorer, endpoint):
    make_endpoint(owner, "other", [{"name": "main", "model": scorer, "version": version_of(scorer, 2)}], region="eu")
    data = api_client_for(owner).get(LIST).json()
    assert [e["name"] for e in data["results"]] == ["fraud", "other"] and data["count"] == 2
    assert [e["name"] for e in api_client_for(owner).get(LIST + "?region=eu").json()["results"]] == ["other"]
    assert [e["name"] for e in api_client_for(owner).get(LIST + "?q=fra").json()["results"]] == ["fraud"]
    assert api_client_for(owner).get(LIST + "?model=nothing").json()["count"] == 0
    assert api_client_for(stranger).get(LIST).json()["count"] == 0


def test_patch_replaces_routes_keeping_the_row_of_a_kept_name(owner, scorer, endpoint):
    kept = Route.objects.get(endpoint=endpoint, name="main")
    routes = [
        {"name": "main", "model": "fraud-score", "alias": "staging", "weight": 90},
        {"name": "canary", "model": "fraud-score", "version": 2, "weight": 10},
    ]
    response = api_client_for(owner).patch(f"{LIST}fraud/", {"routes": routes}, format="json")
    assert response.status_code == 200, response.content
    assert [(r["name"], r["weight"], r["serving_version"]) for r in response.json()["routes"]] == [
        ("main", 90, 1),
        ("canary", 10, 2),
    ]
    assert Route.objects.get(endpoint=endpoint, name="main").pk == kept.pk


def test_alias_route_follows_the_alias_when_it_moves(owner, scorer, endpoint):
    catalog.alias_move(model=scorer, alias="staging", version=version_of(scorer, 2), actor=owner)
    assert api_client_for(owner).get(f"{LIST}fraud/").json()["routes"][0]["serving_version"] == 2


def test_patch_routes_while_a_canary_runs_is_409_naming_abort(owner, scorer, endpoint):
    now = timezone.now()
    Canary.objects.create(
        endpoint=endpoint, version=version_of(scorer, 2), baseline_route="main", steps=[50, 100],
        step_interval_s=60, started_by=owner, step_started_at=now, next_evaluation_at=now,
    )  # fmt: skip
    routes = [{"name": "main", "model": "fraud-score", "version": 2, "weight": 100}]
    response = api_client_for(owner).patch(f"{LIST}fraud/", {"routes": routes}, format="json")
    assert response.status_code == 409
    assert "POST /api/v1/endpoints/fraud/canary/abort" in response.json()["detail"]
    ok = api_client_for(owner).patch(f"{LIST}fraud/", {"description": "still editable"}, format="json")
    assert ok.status_code == 200


def test_viewer_reads_but_cannot_patch(owner, viewer, endpoint):
    share_as(endpoint, viewer)
    client = api_client_for(viewer)
    assert client.get(f"{LIST}fraud/").status_code == 200
    assert client.patch(f"{LIST}fraud/", {"description": "x"}, format="json").status_code == 403


def _window(endpoint, scorer, route, minute, *, mode="live", requests=10, errors=0, latency=2.0, **extra):
    hist = histogram.empty()
    hist[histogram.bucket(latency)] = requests
    return TrafficWindow.objects.create(
        endpoint=endpoint, route=route, mode=mode, version=version_of(scorer, 1), minute=minute,
        requests=requests, errors=errors, rows=requests, latency_sum_ms=latency * requests, latency_hist=hist, **extra,
    )  # fmt: skip


def test_traffic_sums_windows_per_route_and_minute(owner, scorer, endpoint):
    minute = timezone.now().replace(second=0, microsecond=0)
    _window(endpoint, scorer, "main", minute, requests=10, errors=1)
    _window(endpoint, scorer, "main", minute - timedelta(minutes=1), requests=30, errors=1)
    _window(endpoint, scorer, "main", minute - timedelta(minutes=90), requests=1000)  # outside the hour
    _window(
        endpoint, scorer, "shadow", minute, mode="shadow", requests=8,
        shadow_compared=8, shadow_agreed=6, shadow_abs_diff_sum=0.4, logs_dropped=3,
    )  # fmt: skip
    data = api_client_for(owner).get(f"{LIST}fraud/traffic").json()
    routes = {r["route"]: r for r in data["routes"]}
    assert routes["main"]["requests"] == 40 and routes["main"]["errors"] == 2
    assert routes["main"]["error_rate"] == pytest.approx(0.05)
    assert 1.0 < routes["main"]["p95_ms"] <= 2.0
    assert routes["shadow"]["shadow_agreement_rate"] == pytest.approx(0.75)
    assert routes["shadow"]["shadow_mean_abs_diff"] == pytest.approx(0.05)
    assert data["total"]["logs_dropped"] == 3 and data["minutes"] == 60
    assert len([p for p in data["series"] if p["route"] == "main"]) == 2
    longer = api_client_for(owner).get(f"{LIST}fraud/traffic?minutes=120").json()
    assert {r["route"]: r for r in longer["routes"]}["main"]["requests"] == 1040


def test_traffic_minutes_out_of_range_is_400_and_empty_traffic_has_nulls(owner, endpoint):
    client = api_client_for(owner)
    assert "minutes" in client.get(f"{LIST}fraud/traffic?minutes=0").json()
    data = client.get(f"{LIST}fraud/traffic").json()
    assert data["routes"] == [] and data["total"]["p95_ms"] is None and data["total"]["error_rate"] is None


def _endpoints(owner, scorer, start, stop):
    for i in range(start, stop):
        make_endpoint(
            owner, f"ep-{i:03d}",
            [{"name": "main", "model": scorer, "alias": "staging", "weight": 90},
             {"name": "pinned", "model": scorer, "version": version_of(scorer, 2), "weight": 10}],
        )  # fmt: skip


@pytest.mark.parametrize("url", [LIST + "?page_size=100", "/endpoints/"])
def test_endpoint_lists_cost_the_same_at_5_and_50_rows(owner, scorer, url):
    client = api_client_for(owner) if url.startswith("/api/") else page_client_for(owner)
    _endpoints(owner, scorer, 0, 5)
    list_cost(client, url)  # warm the per-process caches (permission ids, content types, the session)
    small = list_cost(client, url)
    _endpoints(owner, scorer, 5, 50)
    large = list_cost(client, url)
    assert small.status == large.status == 200
    assert (large.queries, large.reverses) == (small.queries, small.reverses)


@pytest.fixture
def quiet_predict():
    """No background log or shadow writers in this process (as in test_predict_api.py)."""
    from apps.serving.inference import cache, logbook, shadow

    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    yield
    logbook.discard()
    shadow.drain()
    cache.STATE.reset()


def test_a_patched_route_serves_the_next_prediction(owner, scorer, endpoint, quiet_predict):
    browser = page_client_for(owner)
    predict = f"{LIST}fraud/predict"
    assert browser.post(predict, {"inputs": rows(1)}, content_type="application/json").json()["version"] == 1
    routes = [{"name": "main", "model": "fraud-score", "version": 2, "weight": 100}]
    assert api_client_for(owner).patch(f"{LIST}fraud/", {"routes": routes}, format="json").status_code == 200
    assert browser.post(predict, {"inputs": rows(1)}, content_type="application/json").json()["version"] == 2
