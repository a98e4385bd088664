"""Alias moves that ramp in: an endpoint with a rollout plan meets a move of the alias its baseline
follows with a canary (the baseline pinned to what it served), which completes by following the
alias again or rolls back and leaves the pin, released when the alias comes back."""

from __future__ import annotations

import pytest

from apps.catalog import services as catalog
from apps.core.models import AuditEntry
from apps.serving.models import Canary, Endpoint, Route
from tests.conftest import api_client_for
from tests.serving.conftest import make_endpoint, version_of
from tests.serving.test_canary import evaluate, step_traffic

PLAN = {"steps": [10, 50, 100], "step_interval_s": 60, "guards": {"error_rate": 0.02, "min_samples": 100}}


@pytest.fixture
def ramped(owner, scorer) -> Endpoint:
    """`ramped`: one live route `main` following fraud-score@staging (v1), with a rollout plan."""
    return make_endpoint(owner, "ramped", [{"name": "main", "model": scorer, "alias": "staging"}], rollout=PLAN)


def routes(endpoint) -> dict:
    return {
        r.name: (r.alias or None, r.version.version if r.version_id else None, r.weight)
        for r in Route.objects.filter(endpoint=endpoint).select_related("version")
    }


@pytest.mark.django_db
def test_an_alias_move_starts_a_ramp_instead_of_a_switch(owner, scorer, ramped):
    catalog.alias_move(model=scorer, alias="staging", version=version_of(scorer, 2), actor=owner)
    assert routes(ramped) == {"main": (None, 1, 90), "canary": (None, 2, 10)}
    canary = Canary.objects.get(endpoint=ramped)
    assert (canary.state, canary.follow_alias, canary.version.version, canary.steps) == (
        "running",
        "staging",
        2,
        [10, 50, 100],
    )
    assert AuditEntry.objects.filter(additional_data__event="canary.start", object_pk=str(ramped.pk)).exists()


@pytest.mark.django_db
def test_without_a_plan_the_route_switches_at_once(owner, scorer):
    endpoint = make_endpoint(owner, "plain", [{"name": "main", "model": scorer, "alias": "staging"}])
    catalog.alias_move(model=scorer, alias="staging", version=version_of(scorer, 2), actor=owner)
    assert routes(endpoint) == {"main": ("staging", None, 100)}
    assert not Canary.objects.filter(endpoint=endpoint).exists()


@pytest.mark.django_db
def test_a_completed_ramp_follows_the_alias_again(owner, scorer, ramped):
    catalog.alias_move(model=scorer, alias="staging", version=version_of(scorer, 2), actor=owner)
    canary = Canary.objects.get(endpoint=ramped)
    for _ in PLAN["steps"]:
        step_traffic(canary, base_errors=3, canary_errors=1)
        evaluate(canary)
    canary.refresh_from_db()
    assert canary.state == "completed", canary.evaluations
    assert "following the alias staging again" in canary.reason
    assert routes(ramped) == {"main": ("staging", None, 100)}


@pytest.mark.django_db
def test_a_rolled_back_ramp_keeps_the_old_version_until_the_alias_comes_back(owner, scorer, ramped):
    catalog.alias_move(model=scorer, alias="staging", version=version_of(scorer, 2), actor=owner)
    canary = Canary.objects.get(endpoint=ramped)
    step_traffic(canary, canary_requests=400, canary_errors=60)
    evaluate(canary)
    canary.refresh_from_db()
    assert canary.state == "rolled_back"
    assert "stays pinned to v1" in canary.reason and "staging points to v2" in canary.reason
    assert routes(ramped) == {"main": (None, 1, 100), "canary": (None, 2, 0)}
    # the alias moves back (a rolled-back promotion): the route follows it again
    catalog.alias_move(model=scorer, alias="staging", version=version_of(scorer, 1), actor=owner)
    assert routes(ramped)["main"] == ("staging", None, 100)
    assert Canary.objects.filter(endpoint=ramped).count() == 1  # moving back to what it serves starts nothing


@pytest.mark.django_db
def test_the_rollout_plan_is_set_and_checked_through_the_api(owner, scorer):
    client = api_client_for(owner)
    body = {"name": "api-ramp", "routes": [{"name": "main", "model": "fraud-score", "alias": "staging", "weight": 100}]}
    bad = client.post("/api/v1/endpoints/", {**body, "rollout": {"steps": [50, 10]}}, format="json")
    assert bad.status_code == 400 and "rollout" in bad.json(), bad.content
    made = client.post("/api/v1/endpoints/", {**body, "rollout": PLAN}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["rollout"]["steps"] == [10, 50, 100]
    cleared = client.patch("/api/v1/endpoints/api-ramp/", {"rollout": {}}, format="json")
    assert cleared.status_code == 200 and cleared.json()["rollout"] == {}


@pytest.mark.django_db
def test_the_edit_page_sets_a_ramp_and_the_detail_page_says_so(owner, scorer, endpoint):
    from tests.conftest import page_client_for
    from tests.serving.test_endpoints_pages import route_rows

    post = {
        "description": "", "log_sample_rate": "0.1", "ramp_steps": "10, 50, 100", "ramp_interval_s": "120",
        "ramp_error_rate": "0.01", "ramp_min_samples": "200",
        **route_rows({"name": "main", "model": "fraud-score", "alias": "staging", "weight": "100"}),
    }  # fmt: skip
    client = page_client_for(owner)
    response = client.post("/endpoints/fraud/edit/", post)
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint.refresh_from_db()
    assert endpoint.rollout == {
        "steps": [10, 50, 100],
        "step_interval_s": 120,
        "guards": {"error_rate": 0.01, "min_samples": 200},
    }
    assert "Alias moves ramp in: 10 → 50 → 100 %" in client.get("/endpoints/fraud/").content.decode()
    bad = client.post("/endpoints/fraud/edit/", {**post, "ramp_steps": "50, 10"})
    assert bad.status_code == 400 and "Steps must rise strictly" in bad.content.decode()
