"""Endpoint pages: list, new, detail, edit, share/unshare and try-it."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from apps.serving import histogram
from apps.serving.models import Endpoint, Route, TrafficWindow
from tests.conftest import make_user, page_client_for, share_as
from tests.serving.conftest import FEATURES, rows, version_of

pytestmark = pytest.mark.django_db


def route_rows(*routes: dict) -> dict:
    data = {"routes-TOTAL_FORMS": str(len(routes)), "routes-INITIAL_FORMS": "0", "routes-MAX_NUM_FORMS": "20"}
    for i, route in enumerate(routes):
        for key, value in {"weight": 100, "mode": "live", "version": "", "alias": "", **route}.items():
            data[f"routes-{i}-{key}"] = value
    return data


def create_post(**overrides) -> dict:
    return {
        "name": "fraud-page", "description": "from the page", "region": "default", "log_sample_rate": "0.2",
        **route_rows(
            {"name": "main", "model": "fraud-score", "alias": "staging"},
            {"name": "copy", "model": "fraud-score", "version": "2", "weight": "25", "mode": "shadow"},
            {"name": "", "model": ""},  # a blank row is skipped
        ),
        **overrides,
    }  # fmt: skip


def test_list_is_empty_with_how_to_create_then_shows_routes_and_traffic(owner, scorer):
    client = page_client_for(owner)
    empty = client.get("/endpoints/").content.decode()
    assert "No endpoints match" in empty and "/endpoints/new/" in empty
    client.post("/endpoints/new/", create_post())
    endpoint = Endpoint.objects.get(name="fraud-page")
    hist = histogram.empty()
    hist[3] = 1234
    TrafficWindow.objects.create(
        endpoint=endpoint, route="main", version=version_of(scorer, 1), minute=timezone.now(), requests=1234,
        latency_hist=hist,
    )  # fmt: skip
    html = client.get("/endpoints/").content.decode()
    assert "fraud-page" in html and "fraud-score@staging" in html and "v1" in html and "1,234" in html


def test_create_page_makes_the_endpoint_with_its_routes(owner, scorer):
    response = page_client_for(owner).post("/endpoints/new/", create_post())
    assert response.status_code == 302 and response["Location"] == "/endpoints/fraud-page/"
    endpoint = Endpoint.objects.get(name="fraud-page")
    assert endpoint.log_sample_rate == pytest.approx(0.2)
    assert [(r.name, r.alias, r.version_id and r.version.version, r.weight, r.mode) for r in endpoint.routes.all()] == [
        ("main", "staging", None, 100, "live"),
        ("copy", "", 2, 25, "shadow"),
    ]


def test_create_page_shows_route_errors_inline_and_creates_nothing(owner, scorer):
    post = create_post(**route_rows({"name": "main", "model": "fraud-score", "version": "1", "weight": "70"}))
    response = page_client_for(owner).post("/endpoints/new/", post)
    assert response.status_code == 400
    assert "sum to 70" in response.content.decode()
    assert not Endpoint.objects.filter(name="fraud-page").exists()


def test_create_page_needs_the_role(db, scorer):
    nobody = make_user("nobody")
    assert page_client_for(nobody).get("/endpoints/new/").status_code == 403


def test_detail_shows_routes_serving_versions_links_and_curl(owner, endpoint):
    html = page_client_for(owner).get("/endpoints/fraud/").content.decode()
    assert "staging" in html and ">v1<" in html
    assert "/endpoints/fraud/canary/" in html and "/endpoints/fraud/ab/" in html
    assert "/api/v1/endpoints/fraud/predict" in html and "Authorization: Token" in html
    assert "Sharing" in html or "share" in html.lower()


def test_detail_is_404_for_a_stranger_and_has_no_edit_for_a_viewer(owner, viewer, stranger, endpoint):
    share_as(endpoint, viewer)
    assert page_client_for(stranger).get("/endpoints/fraud/").status_code == 404
    html = page_client_for(viewer).get("/endpoints/fraud/").content.decode()
    assert "/endpoints/fraud/edit/" not in html
    assert page_client_for(viewer).get("/endpoints/fraud/edit/").status_code == 403


def test_edit_page_changes_weights_and_adds_a_route(owner, scorer, endpoint):
    post = {
        "description": "split", "log_sample_rate": "0.1",
        **route_rows(
            {"name": "main", "model": "fraud-score", "alias": "staging", "weight": "80"},
            {"name": "b", "model": "fraud-score", "version": "2", "weight": "20"},
        ),
    }  # fmt: skip
    response = page_client_for(owner).post("/endpoints/fraud/edit/", post)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert [(r.name, r.weight) for r in Route.objects.filter(endpoint=endpoint).order_by("position")] == [
        ("main", 80),
        ("b", 20),
    ]
    endpoint.refresh_from_db()
    assert endpoint.description == "split"


def test_edit_page_prefills_the_current_routes(owner, endpoint):
    html = page_client_for(owner).get("/endpoints/fraud/edit/").content.decode()
    assert 'value="main"' in html and 'value="staging"' in html and 'value="fraud-score"' in html


def test_share_page_shares_and_unshare_removes(owner, viewer, endpoint):
    client = page_client_for(owner)
    response = client.post("/endpoints/fraud/share/", {"user": "viewer", "role": "viewer"})
    assert response.status_code == 302
    assert page_client_for(viewer).get("/endpoints/fraud/").status_code == 200
    client.post("/endpoints/fraud/unshare/", {"user": "viewer"})
    assert page_client_for(viewer).get("/endpoints/fraud/").status_code == 404


def test_try_page_answers_with_the_prediction(owner, endpoint):
    client = page_client_for(owner)
    response = client.post("/endpoints/fraud/try/", {"inputs": json.dumps(rows(2)), "key": "k-1"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "prediction_id" in html and "&quot;route&quot;: &quot;main&quot;" in html


def test_try_page_shows_a_bad_shape_as_the_api_does(owner, endpoint):
    bad = [[0.0] * (FEATURES - 1)]
    html = page_client_for(owner).post("/endpoints/fraud/try/", {"inputs": json.dumps(bad)}).content.decode()
    assert "400" in html


def test_try_page_refuses_bad_json_inline(owner, endpoint):
    response = page_client_for(owner).post("/endpoints/fraud/try/", {"inputs": "[[1, 2"})
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()


def test_edit_page_posted_as_rendered_keeps_the_unchanged_routes(owner, endpoint):
    post = {
        "description": "only this", "log_sample_rate": "0.1",
        **route_rows({"name": "main", "model": "fraud-score", "alias": "staging"}, {"name": "", "model": ""}),
        "routes-INITIAL_FORMS": "1",
    }  # fmt: skip
    assert page_client_for(owner).post("/endpoints/fraud/edit/", post).status_code == 302
    assert list(Route.objects.filter(endpoint=endpoint).values_list("name", "alias", "weight")) == [
        ("main", "staging", 100)
    ]


def test_profile_makes_a_predict_token_for_named_endpoints_with_a_rate(owner):
    from apps.accounts.models import ApiToken

    client = page_client_for(owner)
    post = {
        "name": "fraud caller",
        "scopes": ["predict"],
        "expires_days": "30",
        "endpoints": "fraud, other,",
        "rate": "600/m",
    }
    assert client.post("/accounts/profile/", post).status_code == 302
    token = ApiToken.objects.get(name="fraud caller")
    assert token.endpoints == ["fraud", "other"] and token.rate == "600/m"
    html = client.get("/accounts/profile/").content.decode()
    assert "fraud, other" in html and "600/m" in html


def test_profile_refuses_endpoints_without_the_predict_scope_inline(owner):
    from apps.accounts.models import ApiToken

    post = {"name": "reader", "scopes": ["read"], "expires_days": "30", "endpoints": "fraud", "rate": "fast"}
    response = page_client_for(owner).post("/accounts/profile/", post)
    assert response.status_code == 200 and "apply to the" in response.content.decode()
    assert not ApiToken.objects.filter(name="reader").exists()


def test_detail_charts_the_last_hour_and_reports_shadow_agreement(owner, scorer, endpoint):
    hist = histogram.empty()
    hist[histogram.bucket(4.0)] = 40
    minute = timezone.now().replace(second=0, microsecond=0)
    for route, mode in (("main", "live"), ("copy", "shadow")):
        TrafficWindow.objects.create(
            endpoint=endpoint, route=route, mode=mode, version=version_of(scorer, 1), minute=minute, requests=40,
            latency_hist=hist, shadow_compared=40 if mode == "shadow" else 0, shadow_agreed=30,
        )  # fmt: skip
    html = page_client_for(owner).get("/endpoints/fraud/").content.decode()
    assert 'id="traffic-chart"' in html and "plotly" in html
    assert "agrees with the live answer on 75 % of 40" in html
