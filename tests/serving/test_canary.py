"""Canary ramps: start and its refusals, evaluation with traffic windows made as rows (advance,
hold, roll back by itself, complete), protected aliases and abort."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.approvals.models import PromotionRequest
from apps.catalog.models import Alias, ModelVersion
from apps.core.audit import system_user
from apps.core.models import AuditEntry
from apps.notifications.models import Notification
from apps.serving import histogram
from apps.serving.models import Canary, Feedback, Route, TrafficWindow
from apps.serving.services.canaries import canaries_evaluate_due, serving_version_id
from tests.conftest import api_client_for, share_as
from tests.serving.conftest import make_endpoint, version_of

URL = "/api/v1/endpoints/{}/canary"
GUARDS = {"error_rate": 0.02, "p95_latency_ms": 20, "min_samples": 100}


@pytest.fixture
def pinned(owner, scorer):
    """`pinned`: one live route `main` pinned to v1."""
    return make_endpoint(owner, "pinned", [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}])


def start(client, endpoint, **overrides):
    body = {"version": 2, "steps": [5, 25, 50, 100], "step_interval_s": 60, "guards": GUARDS} | overrides
    return client.post(URL.format(endpoint.name), body, format="json")


def weights(endpoint) -> dict:
    return {r.name: r.weight for r in Route.objects.filter(endpoint=endpoint)}


def window(endpoint, route, version, requests, errors=0, latency_ms=1.0, minute=None):
    hist = histogram.empty()
    hist[histogram.bucket(latency_ms)] = requests
    return TrafficWindow.objects.create(
        endpoint=endpoint, route=route, version=version, requests=requests, errors=errors, rows=requests,
        latency_sum_ms=latency_ms * requests, latency_hist=hist,
        minute=(minute or timezone.now()).replace(second=0, microsecond=0),
    )  # fmt: skip


def step_traffic(canary, *, base=2900, base_errors=10, canary_requests=400, canary_errors=2, canary_ms=1.0):
    """Windows for the current step of `canary`, in the minute its step began."""
    canary.refresh_from_db()
    baseline_version = serving_version_id(Route.objects.get(endpoint=canary.endpoint, name=canary.baseline_route))
    window(
        canary.endpoint,
        canary.baseline_route,
        ModelVersion.objects.get(pk=baseline_version),
        base,
        base_errors,
        minute=canary.step_started_at,
    )
    window(canary.endpoint, "canary", canary.version, canary_requests, canary_errors, canary_ms, canary.step_started_at)


def evaluate(canary) -> dict:
    canary.refresh_from_db()
    return canaries_evaluate_due(actor=system_user(), now=canary.next_evaluation_at)


@pytest.mark.django_db
def test_start_moves_the_first_step_from_the_baseline(owner, pinned):
    client = api_client_for(owner)
    response = start(client, pinned)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["state"], body["step"], body["weight"], body["version"], body["baseline_route"]) == (
        "running",
        0,
        5,
        2,
        "main",
    )
    assert body["guards"] == GUARDS and body["started_by"] == "owner" and body["next_evaluation_at"]
    assert weights(pinned) == {"main": 95, "canary": 5}
    assert Route.objects.get(endpoint=pinned, name="canary").version.version == 2
    assert client.get(URL.format("pinned")).json()["id"] == body["id"]
    again = start(client, pinned)
    assert again.status_code == 409 and "already running" in again.json()["detail"]
    assert AuditEntry.objects.filter(additional_data__event="canary.start").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"steps": [5, 5, 100]}, "steps"),
        ({"steps": [5, 50]}, "steps"),
        ({"steps": [0, 100]}, "steps"),
        ({"step_interval_s": 5}, "step_interval_s"),
        ({"version": 9}, "version"),
        ({"version": 1}, "version"),  # the baseline serves it already
        ({"guards": {"error_rate": 2}}, "guards"),
        ({"guards": {"min_samples": 10}}, "guards"),  # no guard at all
        ({"guards": {"error_rate": 0.1, "latency": 5}}, "guards"),
    ],
)
def test_bad_plans_are_400_naming_the_field(owner, pinned, overrides, field):
    response = start(api_client_for(owner), pinned, **overrides)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert weights(pinned) == {"main": 100}


@pytest.mark.django_db
def test_a_baseline_without_the_first_steps_weight_is_409(owner, scorer):
    endpoint = make_endpoint(
        owner, "split", [
            {"name": "main", "model": scorer, "version": version_of(scorer, 1), "weight": 60},
            {"name": "other", "model": scorer, "version": version_of(scorer, 1), "weight": 40},
        ],
    )  # fmt: skip
    response = start(api_client_for(owner), endpoint, steps=[70, 100])
    assert response.status_code == 409 and "carries 60 %" in response.json()["detail"]
    assert start(api_client_for(owner), endpoint, steps=[10, 100]).status_code == 201
    assert weights(endpoint) == {"main": 50, "other": 40, "canary": 10}


@pytest.mark.django_db
def test_healthy_steps_advance_and_completion_repins_the_baseline(owner, pinned):
    start(api_client_for(owner), pinned)
    canary = Canary.objects.get()
    for expected in (25, 50, 100):
        step_traffic(canary)
        assert list(evaluate(canary).values()) == ["advanced"]
        assert weights(pinned) == {"main": 100 - expected, "canary": expected}
    step_traffic(canary)  # at 100 % the baseline has no traffic: its numbers come from the whole ramp
    assert list(evaluate(canary).values()) == ["completed"]
    canary.refresh_from_db()
    assert canary.state == "completed" and [e["verdict"] for e in canary.evaluations] == [
        "advance", "advance", "advance", "complete"
    ]  # fmt: skip
    assert canary.evaluations[0]["canary"]["requests"] == 400 and canary.evaluations[0]["baseline"]["errors"] == 10
    main = Route.objects.get(endpoint=pinned)
    assert (main.name, main.version.version, main.weight) == ("main", 2, 100)
    assert "now serves v2" in canary.reason
    assert AuditEntry.objects.filter(additional_data__event="canary.complete").count() == 1
    assert Notification.objects.filter(kind="canary.completed", recipient=owner).count() == 1


@pytest.mark.django_db
def test_injected_errors_roll_back_by_themselves_and_say_why(owner, editor, pinned):
    share_as(pinned, editor, role="editor")
    start(api_client_for(editor), pinned)
    canary = Canary.objects.get()
    step_traffic(canary, canary_requests=340, canary_errors=41, base=2910, base_errors=12)
    assert list(evaluate(canary).values()) == ["rolled_back"]
    canary.refresh_from_db()
    assert canary.state == "rolled_back" and canary.weight == 0
    assert "error rate 12.1 % against 0.4 % on the baseline (allowed +2.0 points) over 340 and 2,910 requests" in (
        canary.reason
    )
    assert weights(pinned) == {"main": 100, "canary": 0}
    entry = AuditEntry.objects.get(additional_data__event="canary.rollback")
    assert entry.additional_data["evaluation"][0]["canary"]["errors"] == 41
    notes = Notification.objects.filter(kind="canary.rolled_back")
    assert sorted(n.recipient.username for n in notes) == ["editor", "owner"]
    assert "12.1 %" in notes[0].body
    assert canaries_evaluate_due(actor=system_user(), now=timezone.now() + timedelta(days=1)) == {}


@pytest.mark.django_db
def test_slow_canary_rolls_back_on_p95(owner, pinned):
    start(api_client_for(owner), pinned)
    canary = Canary.objects.get()
    step_traffic(canary, canary_ms=45.0)
    assert list(evaluate(canary).values()) == ["rolled_back"]
    canary.refresh_from_db()
    assert "p95 latency" in canary.reason and "(allowed +20 ms)" in canary.reason


@pytest.mark.django_db
def test_too_few_samples_hold_the_step(owner, pinned):
    start(api_client_for(owner), pinned)
    canary = Canary.objects.get()
    due = canary.next_evaluation_at
    step_traffic(canary, canary_requests=40, canary_errors=40)  # all errors, but too few to judge
    assert list(evaluate(canary).values()) == ["held"]
    canary.refresh_from_db()
    assert canary.state == "running" and canary.weight == 5
    assert canary.next_evaluation_at == due + timedelta(seconds=60)
    assert canary.evaluations[-1]["verdict"] == "hold" and "40 of 100 requests" in canary.evaluations[-1]["note"]
    assert canaries_evaluate_due(actor=system_user(), now=due) == {}  # not due again yet


@pytest.mark.django_db
def test_outcome_guard_rolls_back_a_canary_that_converts_worse(owner, pinned):
    start(api_client_for(owner), pinned, guards={"outcome": 0.05, "min_samples": 10})
    canary = Canary.objects.get()
    step_traffic(canary)
    at = canary.step_started_at + timedelta(seconds=1)
    for i in range(20):
        for route, version, outcome in (
            ("main", version_of(canary.version.model, 1), i % 2),
            ("canary", canary.version, int(i < 4)),
        ):
            Feedback.objects.create(
                endpoint=pinned,
                prediction_id=f"{route}-{i}",
                route=route,
                version=version,
                predicted_at=at,
                outcome=outcome,
            )
    assert list(evaluate(canary).values()) == ["rolled_back"]
    canary.refresh_from_db()
    assert "mean outcome 0.200 against 0.500 on the baseline (allowed -0.05) over 20 and 20 outcomes" in canary.reason


@pytest.mark.django_db
def test_alias_baseline_is_pinned_on_completion_when_its_alias_points_elsewhere(owner, endpoint):
    start(api_client_for(owner), endpoint, steps=[50, 100], guards={"error_rate": 0.05, "min_samples": 1})
    canary = Canary.objects.get()
    for _ in range(2):
        step_traffic(canary, base=10, base_errors=0, canary_requests=10, canary_errors=0)
        evaluate(canary)
    canary.refresh_from_db()
    assert canary.state == "completed" and "pinned" in canary.reason and "staging" in canary.reason
    main = Route.objects.get(endpoint=endpoint)
    assert (main.alias, main.version.version, main.weight) == ("", 2, 100)


@pytest.mark.django_db
def test_protected_alias_needs_a_promoted_promotion(owner, endpoint, scorer):
    Alias.objects.filter(model=scorer, name="staging").update(protected=True)
    client = api_client_for(owner)
    refused = start(client, endpoint)
    assert refused.status_code == 409 and "POST /api/v1/promotions/" in refused.json()["detail"]
    promotion = PromotionRequest.objects.create(
        model=scorer, version=version_of(scorer, 2), target_alias="staging", requested_by=owner,
        justification="better", approvals_required=1, state=PromotionRequest.State.AWAITING_APPROVAL,
    )  # fmt: skip
    assert start(client, endpoint).status_code == 409  # not promoted yet
    promotion.state = PromotionRequest.State.PROMOTED
    promotion.save()
    allowed = start(client, endpoint)
    assert allowed.status_code == 201 and allowed.json()["promotion_ref"] == str(promotion.pk)


@pytest.mark.django_db
def test_abort_returns_the_traffic_and_a_second_abort_is_409(owner, viewer, pinned):
    client = api_client_for(owner)
    start(client, pinned)
    share_as(pinned, viewer)
    assert api_client_for(viewer).post(URL.format("pinned") + "/abort").status_code == 403
    response = client.post(URL.format("pinned") + "/abort")
    assert response.status_code == 200 and response.json()["state"] == "aborted"
    assert response.json()["next_evaluation_at"] is None
    assert weights(pinned) == {"main": 100, "canary": 0}
    assert client.post(URL.format("pinned") + "/abort").status_code == 409
    restarted = start(client, pinned)  # the idle canary route is reused
    assert restarted.status_code == 201 and weights(pinned) == {"main": 95, "canary": 5}


@pytest.mark.django_db
def test_get_without_any_canary_is_404(owner, pinned, stranger):
    assert api_client_for(owner).get(URL.format("pinned")).status_code == 404
    assert start(api_client_for(stranger), pinned).status_code == 404
