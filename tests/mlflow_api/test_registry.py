"""The MLflow model-registry subset in process (the real client against a live portal is in
test_registry_client.py): registered models, versions from a run's ONNX artifact with lineage,
aliases, protected aliases, strangers and bad input, in MLflow's JSON and error shapes."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client

from apps.accounts.services import token_create
from apps.catalog import services as catalog
from apps.catalog.selectors import model_for, version_for
from apps.experiments import services as experiments
from tests.access.objects import onnx_bytes
from tests.conftest import share_as

API = "/api/2.0/mlflow"
MLMODEL = b"flavors:\n  onnx:\n    onnx_version: 1.17.0\n    data: model.onnx\n"


def client_for(user, scopes=("read", "write")) -> Client:
    _, key = token_create(user=user, name="mlflow", scopes=list(scopes), expires_days=1)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def post(client, path, body, method="post"):
    return getattr(client, method)(f"{API}/{path}", data=json.dumps(body), content_type="application/json")


def upload(run, actor, path, data):
    experiments.run_artifact_upload(run=run, actor=actor, src=io.BytesIO(data), size=len(data), path=path)


@pytest.fixture
def run(owner):
    experiment = experiments.experiment_create(name="mlflow-registry", actor=owner)
    run = experiments.run_create(experiment=experiment, actor=owner, name="train", source="script")
    upload(run, owner, "model/model.onnx", onnx_bytes())
    upload(run, owner, "model/MLmodel", MLMODEL)
    return run


def folder(run, path="model") -> str:
    return f"mlflow-artifacts:/{run.experiment_id}/{run.pk}/artifacts/{path}"


def registered(owner, run, name="churn-onnx"):
    client = client_for(owner)
    assert post(client, "registered-models/create", {"name": name}).status_code == 200
    response = post(client, "model-versions/create", {"name": name, "source": folder(run), "run_id": str(run.pk)})
    assert response.status_code == 200, response.content
    return client


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error_code"] == code, body
    return body["message"]


@pytest.mark.django_db
def test_version_from_run_artifact_has_lineage_and_mlflow_shape(owner, run):
    client = client_for(owner)
    created = post(client, "registered-models/create", {"name": "churn-onnx", "description": "Churn scorer"})
    assert created.json()["registered_model"]["name"] == "churn-onnx"
    again = post(client, "registered-models/create", {"name": "churn-onnx"})
    error_of(again, 400, "RESOURCE_ALREADY_EXISTS")

    response = post(
        client, "model-versions/create", {"name": "churn-onnx", "source": folder(run), "run_id": str(run.pk)}
    )
    version = response.json()["model_version"]
    assert version["version"] == "1" and version["status"] == "READY"
    assert version["run_id"] == str(run.pk) and version["source"] == folder(run)

    portal = client.get("/api/v1/models/churn-onnx/versions/").json()["results"]
    assert [(v["version"], v["lineage"]["run_id"]) for v in portal] == [(1, str(run.pk))]
    assert portal[0]["artifact"]["sha256"]  # the ONNX itself, copied into the catalog's vault

    got = client.get(f"{API}/model-versions/get", {"name": "churn-onnx", "version": "1"}).json()["model_version"]
    assert got == version
    uri = client.get(f"{API}/model-versions/get-download-uri", {"name": "churn-onnx", "version": "1"}).json()
    assert uri == {"artifact_uri": folder(run)}
    model = client.get(f"{API}/registered-models/get", {"name": "churn-onnx"}).json()["registered_model"]
    assert model["description"] == "Churn scorer" and [v["version"] for v in model["latest_versions"]] == ["1"]


@pytest.mark.django_db
def test_sources_name_a_file_or_runs_uri_and_refuse_others(owner, run):
    client = registered(owner, run)
    by_file = post(
        client, "model-versions/create", {"name": "churn-onnx", "source": f"runs:/{run.pk}/model/model.onnx"}
    )
    assert by_file.json()["model_version"]["version"] == "2"
    uri = client.get(f"{API}/model-versions/get-download-uri", {"name": "churn-onnx", "version": "2"}).json()
    assert uri == {"artifact_uri": folder(run)}  # the file's folder: clients read a model as a folder

    upload(run, owner, "model/other.onnx", onnx_bytes())
    two = post(client, "model-versions/create", {"name": "churn-onnx", "source": folder(run)})
    assert "More than one ONNX file" in error_of(two, 400, "INVALID_PARAMETER_VALUE")
    not_onnx = post(client, "model-versions/create", {"name": "churn-onnx", "source": folder(run, "model/MLmodel")})
    error_of(not_onnx, 400, "INVALID_PARAMETER_VALUE")
    for source in ("models:/m1", "/tmp/model", "s3://bucket/model", 7):
        response = post(client, "model-versions/create", {"name": "churn-onnx", "source": source})
        error_of(response, 400, "INVALID_PARAMETER_VALUE")
    other_run = post(
        client, "model-versions/create", {"name": "churn-onnx", "source": folder(run), "run_id": str(run.pk + 1)}
    )
    error_of(other_run, 400, "INVALID_PARAMETER_VALUE")
    missing = post(client, "model-versions/create", {"name": "churn-onnx", "source": f"runs:/{run.pk + 99}/model"})
    error_of(missing, 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.django_db
def test_aliases_set_resolve_delete(owner, run):
    client = registered(owner, run)
    assert (
        post(client, "registered-models/alias", {"name": "churn-onnx", "alias": "staging", "version": "1"}).json() == {}
    )
    resolved = client.get(f"{API}/registered-models/alias", {"name": "churn-onnx", "alias": "staging"}).json()
    assert resolved["model_version"]["version"] == "1" and resolved["model_version"]["aliases"] == ["staging"]
    model = client.get(f"{API}/registered-models/get", {"name": "churn-onnx"}).json()["registered_model"]
    assert model["aliases"] == [{"alias": "staging", "version": "1"}]
    assert client.get("/api/v1/models/churn-onnx/aliases/staging").json()["version"] == 1

    deleted = post(client, "registered-models/alias", {"name": "churn-onnx", "alias": "staging"}, method="delete")
    assert deleted.status_code == 200 and deleted.json() == {}
    gone = client.get(f"{API}/registered-models/alias", {"name": "churn-onnx", "alias": "staging"})
    error_of(gone, 404, "RESOURCE_DOES_NOT_EXIST")


@pytest.mark.django_db
def test_protected_alias_answers_permission_denied_with_promotion_hint(owner, run):
    client = registered(owner, run)
    new_champion = post(client, "registered-models/alias", {"name": "churn-onnx", "alias": "champion", "version": "1"})
    assert "POST /api/v1/promotions/" in error_of(new_champion, 403, "PERMISSION_DENIED")

    # an editor may create a new alias protected; from then on it moves only through a promotion
    one = version_for(owner, "churn-onnx", 1)
    catalog.alias_move(model=one.model, alias="blue", version=one, actor=owner, protected=True)
    for method, body in (("post", {"version": "1"}), ("delete", {})):
        moved = post(client, "registered-models/alias", {"name": "churn-onnx", "alias": "blue", **body}, method=method)
        assert "POST /api/v1/promotions/" in error_of(moved, 403, "PERMISSION_DENIED")
    assert client.get("/api/v1/models/churn-onnx/aliases/blue").json()["version"] == 1


@pytest.mark.django_db
def test_stranger_gets_not_found_and_viewer_permission_denied(owner, stranger, viewer, run):
    registered(owner, run)
    outsider = client_for(stranger)
    for path, params in (
        ("registered-models/get", {"name": "churn-onnx"}),
        ("model-versions/get", {"name": "churn-onnx", "version": "1"}),
        ("model-versions/get-download-uri", {"name": "churn-onnx", "version": "1"}),
        ("registered-models/alias", {"name": "churn-onnx", "alias": "staging"}),
    ):
        error_of(outsider.get(f"{API}/{path}", params), 404, "RESOURCE_DOES_NOT_EXIST")
    for path, body in (
        ("model-versions/create", {"name": "churn-onnx", "source": folder(run)}),
        ("registered-models/alias", {"name": "churn-onnx", "alias": "staging", "version": "1"}),
    ):
        error_of(post(outsider, path, body), 404, "RESOURCE_DOES_NOT_EXIST")
    assert outsider.get(f"{API}/registered-models/search").json() == {"registered_models": []}
    assert outsider.get(f"{API}/model-versions/search", {"filter": "name = 'churn-onnx'"}).json() == {
        "model_versions": []
    }
    # the stranger's own model cannot take the owner's run artifact either
    mine = post(outsider, "registered-models/create", {"name": "stranger-model"})
    assert mine.status_code == 200
    stolen = post(outsider, "model-versions/create", {"name": "stranger-model", "source": folder(run)})
    error_of(stolen, 404, "RESOURCE_DOES_NOT_EXIST")

    share_as(model_for(owner, "churn-onnx"), viewer, "viewer")
    looking = client_for(viewer)
    assert looking.get(f"{API}/registered-models/get", {"name": "churn-onnx"}).status_code == 200
    denied = post(looking, "registered-models/alias", {"name": "churn-onnx", "alias": "staging", "version": "1"})
    error_of(denied, 403, "PERMISSION_DENIED")


@pytest.mark.django_db
def test_search_filters_order_and_pages(owner, run):
    client = registered(owner, run, name="alpha-model")
    for name in ("beta-model", "gamma-model"):
        post(client, "registered-models/create", {"name": name})
        post(client, "model-versions/create", {"name": name, "source": f"runs:/{run.pk}/model"})
    post(client, "model-versions/create", {"name": "alpha-model", "source": f"runs:/{run.pk}/model"})

    first = client.get(f"{API}/registered-models/search", {"max_results": 2, "order_by": "name DESC"}).json()
    assert [m["name"] for m in first["registered_models"]] == ["gamma-model", "beta-model"]
    rest = client.get(
        f"{API}/registered-models/search",
        {"max_results": 2, "order_by": "name DESC", "page_token": first["next_page_token"]},
    ).json()
    assert [m["name"] for m in rest["registered_models"]] == ["alpha-model"] and "next_page_token" not in rest
    alpha = client.get(f"{API}/registered-models/search", {"filter": "name LIKE 'alp%'"}).json()["registered_models"]
    assert [(m["name"], [v["version"] for v in m["latest_versions"]]) for m in alpha] == [("alpha-model", ["2"])]

    # tags: MLflow's key/value as the catalog's slugs; the client itself adds the prompt filter
    tagged = {"name": "delta-model", "tags": [{"key": "team", "value": "risk"}, {"key": "tabular", "value": ""}]}
    assert post(client, "registered-models/create", tagged).json()["registered_model"]["tags"] == [
        {"key": "tabular", "value": ""},
        {"key": "team.risk", "value": ""},
    ]
    not_prompts = "tags.`mlflow.prompt.is_prompt` != 'true'"
    for text, names in (
        (f"name ILIKE '%MODEL' AND {not_prompts}", ["alpha-model", "beta-model", "delta-model", "gamma-model"]),
        ("tags.team = 'risk' AND tag.tabular = ''", ["delta-model"]),
        ("tags.team = 'ops'", []),
    ):
        found = client.get(f"{API}/registered-models/search", {"filter": text}).json().get("registered_models", [])
        assert [m["name"] for m in found] == names, text

    by_run = client.get(
        f"{API}/model-versions/search",
        {
            "filter": f"run_id IN ('{run.pk}', '999') AND name != 'beta-model'",
            "order_by": ["name ASC", "version_number DESC"],
        },
    ).json()["model_versions"]
    assert [(v["name"], v["version"]) for v in by_run] == [
        ("alpha-model", "2"),
        ("alpha-model", "1"),
        ("gamma-model", "1"),
    ]


BAD_INPUT = [
    ("get", "model-versions/get", {"name": "churn-onnx", "version": "abc"}),
    ("get", "model-versions/get", {"name": "churn-onnx", "version": "99999999999999999999999"}),
    ("get", "model-versions/get", {"name": "churn-onnx"}),
    ("get", "registered-models/search", {"filter": "name = 'x' OR name = 'y'"}),
    ("get", "registered-models/search", {"filter": "tags.owner LIKE 'x%'"}),
    ("get", "registered-models/search", {"filter": "owner = 'x'"}),
    ("get", "registered-models/search", {"max_results": "100000"}),
    ("get", "registered-models/search", {"max_results": "1e400"}),
    ("get", "registered-models/search", {"page_token": "not-a-token"}),
    ("get", "registered-models/search", {"order_by": "owner ASC"}),
    ("get", "model-versions/search", {"filter": "name IN ('a')"}),
    ("get", "model-versions/search", {"filter": "run_id = "}),
    ("post", "registered-models/create", {"name": "Not A Slug"}),
    ("post", "registered-models/create", {"name": {"first": "x"}}),
    ("post", "registered-models/create", {"name": "fine-name", "tags": "x"}),
    ("post", "registered-models/create", {"name": "fine-name", "tags": [{"key": "BAD TAG", "value": ""}]}),
    ("post", "registered-models/alias", {"name": "churn-onnx", "alias": "Bad Alias!", "version": "1"}),
    ("post", "registered-models/alias", {"name": "churn-onnx", "alias": "staging", "version": {"a": 1}}),
    ("post", "model-versions/create", {"name": "churn-onnx"}),
]


@pytest.mark.django_db
def test_bad_input_is_invalid_parameter_value(owner, run):
    client = registered(owner, run)
    for method, path, params in BAD_INPUT:
        response = client.get(f"{API}/{path}", params) if method == "get" else post(client, path, params)
        assert response.status_code == 400, (path, params, response.content)
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE", (path, params)


@pytest.mark.django_db
def test_malformed_json_body_is_invalid_parameter_value(owner):
    client = client_for(owner)
    for body in ("{", "[1, 2]", '"text"'):
        response = client.post(f"{API}/registered-models/create", data=body, content_type="application/json")
        error_of(response, 400, "INVALID_PARAMETER_VALUE")


@pytest.mark.django_db
def test_searches_cost_the_same_queries_at_n_and_2n_rows(owner, run):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(owner)

    def grow(start, stop):
        for i in range(start, stop):
            post(client, "registered-models/create", {"name": f"m{i}"})
            post(client, "model-versions/create", {"name": f"m{i}", "source": f"runs:/{run.pk}/model"})
            post(client, "registered-models/alias", {"name": f"m{i}", "alias": "staging", "version": "1"})

    def cost(path):
        with CaptureQueriesContext(connection) as queries:
            body = client.get(f"{API}/{path}").json()
        return len(queries), sum(len(v) for v in body.values() if isinstance(v, list))

    grow(0, 3)
    small = cost("registered-models/search"), cost("model-versions/search")
    grow(3, 6)
    large = cost("registered-models/search"), cost("model-versions/search")
    assert [rows for _, rows in small] == [3, 3] and [rows for _, rows in large] == [6, 6]
    assert [n for n, _ in small] == [n for n, _ in large]
