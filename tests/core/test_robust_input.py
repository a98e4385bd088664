"""No 5xx for bad input (issue 12), by class, on several endpoints each: deep JSON, lone
surrogates, bodies over DATA_UPLOAD_MAX_MEMORY_SIZE, out-of-range pagination."""

from __future__ import annotations

import pytest

from apps.experiments import services as experiments
from tests.conftest import api_client_for, page_client_for

pytestmark = pytest.mark.django_db

DEEP = b"[" * 50_000 + b"]" * 50_000
DEEP_IN_A_FIELD = b'{"name": "x", "tags": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
JUST_TOO_DEEP = b'{"name": "x", "tags": {"a": ' + b"[" * 64 + b"]" * 64 + b"}}"
LONE_SURROGATE = b'{"name": "x", "description": "\\ud800"}'
LONE_SURROGATE_KEY = b'{"name": "x", "tags": {"\\udfff": "v"}}'


@pytest.fixture
def targets(owner):
    """(method, path) of JSON endpoints of several apps, the owner's objects behind them."""
    experiment = experiments.experiment_create(actor=owner, name="robust")
    run = experiments.run_create(experiment=experiment, actor=owner, name="r")
    return [
        ("post", "/api/v1/experiments/"),
        ("patch", f"/api/v1/experiments/{experiment.pk}/"),
        ("post", f"/api/v1/runs/{run.pk}/log-batch"),
        ("post", f"/api/v1/experiments/{experiment.pk}/sharing"),
        ("post", "/api/v1/models/"),
        ("post", "/api/v1/entities/"),
    ]


def _send(client, method: str, path: str, body: bytes):
    return getattr(client, method)(path, data=body, content_type="application/json")


@pytest.mark.parametrize("body", [DEEP, DEEP_IN_A_FIELD, JUST_TOO_DEEP], ids=["deep", "deep-field", "65-levels"])
def test_deeply_nested_json_is_a_400_on_every_endpoint(owner, targets, body):
    client = api_client_for(owner)
    for method, path in targets:
        response = _send(client, method, path, body)
        assert response.status_code == 400, (method, path, response.status_code, response.content[:200])
        assert "nested deeper" in response.json()["detail"]


def test_json_nested_within_the_limit_is_accepted(owner):
    body = b'{"name": "shallow", "tags": {"a": "' + b"b" * 10 + b'"}}'
    assert _send(api_client_for(owner), "post", "/api/v1/experiments/", body).status_code == 201


@pytest.mark.parametrize("body", [LONE_SURROGATE, LONE_SURROGATE_KEY], ids=["value", "key"])
def test_a_lone_surrogate_is_a_400_on_every_endpoint(owner, targets, body):
    client = api_client_for(owner)
    for method, path in targets:
        response = _send(client, method, path, body)
        assert response.status_code == 400, (method, path, response.status_code, response.content[:200])
        assert "surrogate" in response.json()["detail"]


def test_a_surrogate_pair_is_ordinary_text(owner):
    body = b'{"name": "emoji", "description": "\\ud83d\\ude00 and \\\\ud800 spelled out"}'
    response = _send(api_client_for(owner), "post", "/api/v1/experiments/", body)
    assert response.status_code == 201, response.content
    assert response.json()["description"] == "\U0001f600 and \\ud800 spelled out"


def test_a_body_over_the_upload_limit_is_a_413_json_on_every_endpoint(owner, targets, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024  # the 50 MB default, scaled down for speed
    body = b'{"name": "' + b"x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + b'"}'
    client = api_client_for(owner)
    for method, path in targets:
        response = _send(client, method, path, body)
        assert response.status_code == 413, (method, path, response.status_code, response.content[:200])
        assert response["Content-Type"] == "application/json" and "detail" in response.json()


def test_a_60_mb_body_is_a_413_json(owner):
    body = b'{"name": "' + b"x" * (60 * 1024 * 1024) + b'"}'
    response = _send(api_client_for(owner), "post", "/api/v1/experiments/", body)
    assert response.status_code == 413 and "detail" in response.json()


def test_a_session_callers_oversized_body_is_a_413_json(owner, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = b'{"name": "' + b"x" * 2048 + b'"}'
    response = _send(page_client_for(owner), "post", "/api/v1/experiments/", body)
    assert response.status_code == 413 and "detail" in response.json()


LISTS = ["/api/v1/experiments/", "/api/v1/runs/", "/api/v1/models/", "/api/v1/entities/", "/api/v1/feature-views/"]


@pytest.mark.parametrize("page_size", ["0", "501", "abc", "-1", "1e3", "99999999999999999999999"])
def test_an_out_of_range_page_size_is_a_400_naming_it(owner, page_size):
    client = api_client_for(owner)
    for path in LISTS:
        response = client.get(path, {"page_size": page_size})
        assert response.status_code == 400, (path, response.status_code)
        assert list(response.json()) == ["page_size"]


@pytest.mark.parametrize("page", ["0", "abc", "-2"])
def test_a_bad_page_number_is_a_400_naming_it(owner, page):
    client = api_client_for(owner)
    for path in LISTS:
        response = client.get(path, {"page": page})
        assert response.status_code == 400, (path, response.status_code)
        assert list(response.json()) == ["page"]


def test_a_page_past_the_end_is_a_404_and_the_bounds_are_accepted(owner):
    experiments.experiment_create(actor=owner, name="one")
    client = api_client_for(owner)
    for path in LISTS:
        assert client.get(path, {"page": "99999999999999999999"}).status_code == 404, path
        assert client.get(path, {"page": "2"}).status_code == 404, path
        assert client.get(path, {"page_size": "1", "page": "1"}).status_code == 200, path
        assert client.get(path, {"page_size": "500", "page": "last"}).status_code == 200, path
    assert len(client.get("/api/v1/experiments/", {"page_size": "1"}).json()["results"]) == 1


def test_the_schema_documents_the_page_size_bounds(owner):
    response = api_client_for(owner).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    parameters = response.json()["paths"]["/api/v1/experiments/"]["get"]["parameters"]
    page_size = next(p for p in parameters if p["name"] == "page_size")
    assert page_size["schema"] | {} == {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/api/v1/training/jobs/?sweep=32891284098673504793569263616", "/api/v1/runs/?experiment=99999999999999999999999"],
)
def test_integers_past_64_bits_in_filters_answer_400(owner, path):
    from tests.conftest import api_client_for

    response = api_client_for(owner).get(path)
    assert response.status_code == 400, response.content
