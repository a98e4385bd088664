"""POST /api/v1/endpoints/{name}/feedback and GET .../ab-report: outcomes by prediction id."""

from __future__ import annotations

import random
import time

import pytest
from rest_framework.test import APIClient

from apps.accounts.services import token_create
from apps.core.models import AuditEntry
from apps.serving.ids import new_prediction_id, parse_prediction_id
from apps.serving.models import Feedback, Route
from tests.conftest import api_client_for, page_client_for, share_as
from tests.serving.conftest import make_endpoint, version_of

URL = "/api/v1/endpoints/{}/feedback"
REPORT = "/api/v1/endpoints/{}/ab-report"


def pid(endpoint, route_name="a", version=None) -> str:
    """A prediction id the endpoint issued for `route_name`, as predict would."""
    route = Route.objects.get(endpoint=endpoint, name=route_name)
    version_id = version.pk if version is not None else (route.version_id or 1)
    return new_prediction_id(endpoint.pk, route.pk, version_id, int(time.time() * 1000))


def test_every_issued_prediction_id_parses():
    """Feedback works for every answered prediction, also those whose base64url text holds "_"."""
    rng = random.Random(5)
    issued = [
        new_prediction_id(rng.randrange(1, 10**6), rng.randrange(1, 10**6), 3, int(time.time() * 1000) + i)
        for i in range(300)
    ]
    assert [value for value in issued if parse_prediction_id(value) is None] == []


@pytest.fixture
def ab(owner, scorer):
    """`ab`: route a (v1) 50 %, route b (v2) 50 %."""
    return make_endpoint(
        owner, "ab", [
            {"name": "a", "model": scorer, "version": version_of(scorer, 1), "weight": 50},
            {"name": "b", "model": scorer, "version": version_of(scorer, 2), "weight": 50},
        ],
    )  # fmt: skip


def post(client, endpoint, body):
    return client.post(URL.format(endpoint.name), body, format="json")


@pytest.mark.django_db
def test_feedback_is_recorded_once_and_the_same_outcome_again_is_a_no_op(owner, ab):
    client = api_client_for(owner)
    prediction = pid(ab, "b")
    first = post(client, ab, {"prediction_id": prediction, "outcome": True})
    assert first.status_code == 200, first.content
    assert first.json() == {"received": 1, "recorded": 1, "unchanged": 0}
    again = post(client, ab, [{"prediction_id": prediction, "outcome": 1}])
    assert again.status_code == 200 and again.json() == {"received": 1, "recorded": 0, "unchanged": 1}
    row = Feedback.objects.get(prediction_id=prediction)
    assert (row.route, row.outcome, row.version.version, row.recorded_by) == ("b", 1.0, 2, owner)
    assert AuditEntry.objects.filter(additional_data__event="endpoint.feedback").count() == 2


@pytest.mark.django_db
def test_a_different_outcome_for_a_recorded_prediction_is_409(owner, ab):
    client = api_client_for(owner)
    prediction = pid(ab, "a")
    assert post(client, ab, {"prediction_id": prediction, "outcome": 0.5}).status_code == 200
    response = post(
        client, ab, [{"prediction_id": pid(ab, "a"), "outcome": 1}, {"prediction_id": prediction, "outcome": 2}]
    )
    assert response.status_code == 409
    assert prediction in response.json()["detail"]
    assert Feedback.objects.count() == 1  # the whole call was refused: nothing of it stayed


@pytest.mark.django_db
def test_forged_and_foreign_ids_are_400_naming_the_item(owner, ab, scorer):
    other = make_endpoint(owner, "other", [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}])
    client = api_client_for(owner)
    good = pid(ab, "a")
    forged = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    response = post(client, ab, [{"prediction_id": good, "outcome": 1}, {"prediction_id": forged, "outcome": 0}])
    assert response.status_code == 400
    assert response.json()["prediction_id"][0].startswith("Item 2 (index 1)")
    foreign = post(client, ab, [{"prediction_id": pid(other, "main"), "outcome": 1}])
    assert foreign.status_code == 400 and "Item 1" in foreign.json()["prediction_id"][0]
    assert post(client, ab, {"prediction_id": good, "outcome": "yes"}).status_code == 400
    assert post(client, ab, {"prediction_id": good, "outcome": 1, "extra": 1}).json() == {"extra": ["Unknown field."]}
    assert Feedback.objects.count() == 0


@pytest.mark.django_db
def test_a_gone_route_keeps_its_id(owner, ab):
    prediction = pid(ab, "b")
    gone = Route.objects.get(endpoint=ab, name="b")
    gone_id = gone.pk
    gone.delete()
    assert post(api_client_for(owner), ab, {"prediction_id": prediction, "outcome": 0}).status_code == 200
    assert Feedback.objects.get().route == f"#{gone_id}"


@pytest.mark.django_db
def test_more_than_a_thousand_items_is_413(owner, ab):
    body = [{"prediction_id": pid(ab), "outcome": 1}] * 1001
    assert post(api_client_for(owner), ab, body).status_code == 413


@pytest.mark.django_db
def test_who_may_send_feedback(owner, ab, viewer, stranger):
    prediction = pid(ab)
    body = {"prediction_id": prediction, "outcome": 1}
    assert post(api_client_for(stranger), ab, body).status_code == 404
    _, other_endpoint = token_create(user=owner, name="p", scopes=["predict"], expires_days=1, endpoints=["x"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {other_endpoint}")
    assert post(client, ab, body).status_code == 403
    assert post(api_client_for(owner, scopes=("read",)), ab, body).status_code == 403
    _, named = token_create(user=owner, name="p", scopes=["predict"], expires_days=1, endpoints=["ab"])
    client.credentials(HTTP_AUTHORIZATION=f"Token {named}")
    assert post(client, ab, body).status_code == 200
    share_as(ab, viewer)
    assert page_client_for(viewer).post(URL.format("ab"), body, content_type="application/json").status_code == 200


def _outcomes(endpoint, route, ones, zeros):
    for outcome in [1] * ones + [0] * zeros:
        Feedback.objects.create(
            endpoint=endpoint, prediction_id=pid(endpoint, route), route=route,
            predicted_at="2026-01-01T00:00:00Z", outcome=outcome,
        )  # fmt: skip


@pytest.mark.django_db
def test_ab_report_compares_rates_with_a_z_test(owner, ab):
    from scipy import stats

    _outcomes(ab, "a", 100, 900)
    _outcomes(ab, "b", 130, 870)
    response = api_client_for(owner).get(REPORT.format("ab"), {"min_effect": 0.02})
    assert response.status_code == 200, response.content
    report = response.json()
    _, p, _, _ = stats.chi2_contingency([[100, 900], [130, 870]], correction=False)
    assert report["test"] == "two_proportion_z" and report["metric"] == "rate"
    assert report["compared"] == ["a", "b"] and report["p_value"] == pytest.approx(p)
    a, b = report["routes"]
    assert (a["n"], a["rate"], b["rate"]) == (1000, 0.1, 0.13)
    assert a["ci_low"] < 0.1 < a["ci_high"]
    assert a["sample_size_needed"] == 3841 and a["more_needed"] == 2841 and not a["enough_data"]
    assert report["verdict"].startswith("Route b converts 3.0 points better than a, p = ")
    assert "significant at 5 %" in report["verdict"] and "not significant" not in report["verdict"]


@pytest.mark.django_db
def test_ab_report_uses_welch_for_means_and_says_when_data_is_short(owner, ab):
    client = api_client_for(owner)
    assert "Too little data" in client.get(REPORT.format("ab")).json()["verdict"]
    for route, values in (("a", [1.0, 2.0, 3.0, 4.0]), ("b", [2.5, 3.5, 4.5])):
        for value in values:
            Feedback.objects.create(
                endpoint=ab,
                prediction_id=pid(ab, route),
                route=route,
                predicted_at="2026-01-01T00:00:00Z",
                outcome=value,
            )
    report = client.get(REPORT.format("ab")).json()
    assert report["test"] == "welch_t" and report["routes"][0]["mean"] == 2.5
    assert "Too little data to trust it yet" in report["verdict"]
    assert client.get(REPORT.format("ab"), {"metric": "rate"}).status_code == 400
    assert client.get(REPORT.format("ab"), {"min_effect": "x"}).status_code == 400
