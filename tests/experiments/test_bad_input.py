"""Bad input to the experiments API answers 400 naming the field, quickly, never a 5xx (issue #12);
responses carry what the published schema documents."""

import time

import pytest
from django.core.exceptions import ValidationError

from apps.experiments.services import run_create, run_log_batch
from tests.conftest import api_client_for
from tests.experiments.factories import experiment, points, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(owner):
    r = run(experiment(owner), owner)
    run_log_batch(run=r, actor=owner, metrics=points("loss", 5))
    return r


def test_huge_after_step_is_a_400_naming_after_step_not_an_overflow(owner, logged):
    response = api_client_for(owner).get(
        f"/api/v1/runs/{logged.pk}/metrics/loss", {"after_step": "99999999999999999999"}
    )
    assert response.status_code == 400 and "after_step" in response.json()


def test_deeply_nested_run_filter_is_a_400_not_a_recursion_error(owner, logged):
    deep = "(" * 500 + "metrics.loss > 0" + ")" * 500
    response = api_client_for(owner).get("/api/v1/runs/", {"filter": deep})
    assert response.status_code == 400 and "filter" in response.json()
    nested = "(" * 5 + "metrics.loss > 0" + ")" * 5  # a reasonable nesting still works
    assert api_client_for(owner).get("/api/v1/runs/", {"filter": nested}).status_code == 200


@pytest.mark.parametrize("field", ["params", "tags"])
def test_lone_surrogate_in_log_batch_params_or_tags_is_a_quick_400(owner, logged, field):
    client = api_client_for(owner)
    body = '{"' + field + '": {"optimizer": "ad\\ud800am"}}'  # JSON text: the escape reaches the server as sent
    started = time.monotonic()
    response = client.post(f"/api/v1/runs/{logged.pk}/log-batch", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert time.monotonic() - started < 2
    key_body = '{"' + field + '": {"opt\\ud800": "adam"}}'
    response = client.post(f"/api/v1/runs/{logged.pk}/log-batch", key_body, content_type="application/json")
    assert response.status_code == 400
    logged.refresh_from_db()
    assert logged.params == {} and logged.tags == {}


@pytest.mark.parametrize("field", ["params", "tags"])
def test_services_refuse_values_the_database_cannot_store(owner, logged, field):
    """The same rule for callers that do not come through the API's JSON parser (training, the seed)."""
    for bad in ("ad\ud800am", "nul\x00byte"):
        with pytest.raises(ValidationError) as info:
            run_log_batch(run=logged, actor=owner, **{field: {"optimizer": bad}})
        assert field in info.value.message_dict
        with pytest.raises(ValidationError):
            run_create(experiment=logged.experiment, actor=owner, name="x", **{field: {"optimizer": bad}})


def test_experiment_responses_carry_run_count_as_documented(owner, logged):
    client = api_client_for(owner)
    exp = logged.experiment
    assert client.get(f"/api/v1/experiments/{exp.pk}/").json()["run_count"] == 1
    assert client.patch(f"/api/v1/experiments/{exp.pk}/", {"description": "x"}, format="json").json()["run_count"] == 1
    assert client.post("/api/v1/experiments/", {"name": "fresh"}, format="json").json()["run_count"] == 0
    assert client.get("/api/v1/experiments/").json()["results"][0]["run_count"] in (0, 1)


def test_run_responses_carry_stale_and_model_version(owner, logged):
    body = api_client_for(owner).get(f"/api/v1/runs/{logged.pk}/").json()
    assert body["stale"] is False and body["model_version"] is None
    listed = api_client_for(owner).get("/api/v1/runs/").json()["results"][0]
    assert {"stale", "model_version"} <= set(listed)


@pytest.mark.parametrize("key", [{"a": 1}, ["loss"], 7, None, True])
def test_a_metric_key_that_is_not_a_string_is_a_400(owner, logged, key):
    """An object or list as a key once reached the validator's set of checked keys (unhashable: a 500,
    found by the CI's API fuzzing); every non-string key is a 400 naming the item."""
    body = {"metrics": [{"key": key, "value": 1.0, "step": 0, "timestamp": 0}]}
    response = api_client_for(owner).post(f"/api/v1/runs/{logged.pk}/log-batch", body, format="json")
    assert response.status_code == 400, response.content
    assert "item 0" in response.json()["metrics"][0]
    body = {"metrics": [{"key": key, "value": None, "step": 0, "timestamp": 0}]}  # as the fuzzer sent it
    assert api_client_for(owner).post(f"/api/v1/runs/{logged.pk}/log-batch", body, format="json").status_code == 400
