"""The canary page (start form, live ramp, abort) and the A/B report page."""

from __future__ import annotations

import pytest

from apps.serving.models import Canary, Feedback, Route
from tests.conftest import page_client_for, share_as
from tests.serving.conftest import make_endpoint, version_of

FORM = {
    "version": "2", "steps": "10, 50, 100", "step_interval_s": "60", "error_rate_points": "2",
    "p95_latency_ms": "30", "outcome": "", "min_samples": "50",
}  # fmt: skip


@pytest.fixture
def pinned(owner, scorer):
    return make_endpoint(owner, "pinned", [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}])


@pytest.mark.django_db
def test_owner_starts_watches_and_aborts_a_canary(owner, pinned):
    client = page_client_for(owner)
    page = client.get("/endpoints/pinned/canary/")
    assert page.status_code == 200 and b"Start a canary" in page.content and b"No canary has run" in page.content
    started = client.post("/endpoints/pinned/canary/start/", FORM)
    assert started.status_code == 302, started.content.decode()[:2000]
    canary = Canary.objects.get()
    assert (canary.steps, canary.guards) == (
        [10, 50, 100],
        {"error_rate": 0.02, "p95_latency_ms": 30.0, "min_samples": 50},
    )
    live = client.get("/endpoints/pinned/canary/")
    assert b'id="canary-data"' in live.content and b"Abort the canary" in live.content
    assert b"Start a canary" not in live.content
    assert client.post("/endpoints/pinned/canary/abort/").status_code == 302
    canary.refresh_from_db()
    assert canary.state == "aborted"
    assert {r.name: r.weight for r in Route.objects.filter(endpoint=pinned)} == {"main": 100, "canary": 0}


@pytest.mark.django_db
def test_a_bad_plan_shows_on_the_form(owner, pinned):
    response = page_client_for(owner).post("/endpoints/pinned/canary/start/", FORM | {"steps": "50, 10, 100"})
    assert response.status_code == 400 and b"rise strictly" in response.content
    assert not Canary.objects.exists()


@pytest.mark.django_db
def test_viewer_sees_the_ramp_without_the_form(owner, viewer, pinned):
    share_as(pinned, viewer)
    page = page_client_for(viewer).get("/endpoints/pinned/canary/")
    assert page.status_code == 200 and b"Start a canary" not in page.content
    assert page_client_for(viewer).post("/endpoints/pinned/canary/start/", FORM).status_code == 403


@pytest.mark.django_db
def test_ab_page_states_the_verdict(owner, scorer):
    endpoint = make_endpoint(
        owner, "ab", [
            {"name": "a", "model": scorer, "version": version_of(scorer, 1), "weight": 50},
            {"name": "b", "model": scorer, "version": version_of(scorer, 2), "weight": 50},
        ],
    )  # fmt: skip
    for route, ones in (("a", 100), ("b", 160)):
        for i in range(1000):
            Feedback(endpoint=endpoint, prediction_id=f"{route}{i}", route=route, predicted_at="2026-01-01T00:00:00Z",
                     outcome=1 if i < ones else 0).save()  # fmt: skip
    page = page_client_for(owner).get("/endpoints/ab/ab/", {"min_effect": "0.02"})
    assert page.status_code == 200
    assert b"Route b converts 6.0 points better than a, p = " in page.content
    assert b"significant at 5 %" in page.content and b'id="ab-chart"' in page.content


@pytest.mark.django_db
def test_a_rolled_back_canary_says_why_on_its_page(owner, pinned):
    from tests.serving.test_canary import evaluate, step_traffic

    client = page_client_for(owner)
    client.post("/endpoints/pinned/canary/start/", FORM)
    canary = Canary.objects.get()
    step_traffic(canary, canary_requests=200, canary_errors=50)
    evaluate(canary)
    page = client.get("/endpoints/pinned/canary/")
    assert b"error rate 25.0 % against 0.3 % on the baseline" in page.content
    assert b"Rolled back" in page.content and b"Abort the canary" not in page.content
    assert b"Start a canary" in page.content  # a new one may start
