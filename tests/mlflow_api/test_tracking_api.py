"""The MLflow-compatible tracking calls in process: experiments, runs, logging, search, history,
artifacts, and the error shapes (the real client against a live portal is test_tracking_client.py)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.accounts.services import token_create
from apps.core.audit import AuditEntry
from apps.experiments import selectors
from apps.experiments import services as experiments
from apps.experiments.models import MetricPoint, Run
from tests.conftest import share_as

API = "/api/2.0/mlflow"


def client_for(user, scopes=("read", "write"), keyword="Bearer") -> Client:
    _, key = token_create(user=user, name="mlflow", scopes=list(scopes), expires_days=1)
    return Client(HTTP_AUTHORIZATION=f"{keyword} {key}")


def post(client, path, body):
    return client.post(f"{API}/{path}", data=json.dumps(body), content_type="application/json")


def get(client, call, **params):
    return client.get(f"{API}/{call}", params)


def error(response) -> str:
    assert response["Content-Type"] == "application/json", response.content[:200]
    return response.json()["error_code"]


@pytest.fixture
def mlflow(owner):
    return client_for(owner)


@pytest.fixture
def experiment(owner):
    return experiments.experiment_create(name="mlflow-tracking", actor=owner)


@pytest.fixture
def run(owner, experiment):
    return experiments.run_create(experiment=experiment, actor=owner, name="first", source="script")


# --- authentication and error shapes ---------------------------------------------------------
@pytest.mark.django_db
def test_unknown_endpoint_and_method_answer_endpoint_not_found(mlflow):
    for response in (
        post(mlflow, "runs/not-a-call", {}),
        mlflow.get(f"{API}/runs/create"),  # a POST call asked with GET
        mlflow.put(f"{API}/experiments/get"),
        mlflow.get("/api/3.0/mlflow/logged-models/search"),
        mlflow.get("/api/2.0/mlflow-artifacts/mpu/create"),
        mlflow.get("/api/2.0/mlflow"),
        mlflow.post("/ajax-api/2.0/mlflow-artifacts"),
    ):
        assert response.status_code == 404
        assert error(response) == "ENDPOINT_NOT_FOUND"


@pytest.mark.django_db
def test_malformed_json_and_wrong_types_are_invalid_parameter_value(mlflow, run):
    bad_json = mlflow.post(f"{API}/runs/log-metric", data="{not json", content_type="application/json")
    assert (bad_json.status_code, error(bad_json)) == (400, "INVALID_PARAMETER_VALUE")
    not_object = mlflow.post(f"{API}/runs/log-metric", data="[1, 2]", content_type="application/json")
    assert error(not_object) == "INVALID_PARAMETER_VALUE"
    for body in (
        {"run_id": str(run.pk), "key": "loss", "value": "abc", "timestamp": 1, "step": 0},
        {"run_id": str(run.pk), "key": "loss", "value": 0.5, "timestamp": "soon", "step": 0},
        {"run_id": str(run.pk), "key": "loss", "value": 0.5, "timestamp": 1, "step": 10**30},
        {"run_id": str(run.pk), "key": {"a": 1}, "value": 0.5, "timestamp": 1},
        {"run_id": str(run.pk), "key": "loss", "value": 10**400, "timestamp": 1},
        {"run_id": str(run.pk), "key": "bad\nkey", "value": 1, "timestamp": 1},
        {"run_id": str(run.pk), "key": "loss", "timestamp": 1},
    ):
        response = post(mlflow, "runs/log-metric", body)
        assert (response.status_code, error(response)) == (400, "INVALID_PARAMETER_VALUE"), body
    assert not MetricPoint.objects.filter(run_id=run.pk).exists()


@pytest.mark.django_db
def test_missing_or_bad_token_is_unauthenticated(run):
    for client in (Client(), Client(HTTP_AUTHORIZATION="Bearer ptk_nope_nope")):  # pragma: allowlist secret
        response = client.get(f"{API}/runs/get", {"run_id": run.pk})
        assert (response.status_code, error(response)) == (401, "UNAUTHENTICATED")


@pytest.mark.django_db
def test_token_keyword_and_scopes(owner, run):
    assert client_for(owner, keyword="Token").get(f"{API}/runs/get", {"run_id": run.pk}).status_code == 200
    read_only = client_for(owner, scopes=("read",))
    response = post(read_only, "runs/log-metric", {"run_id": str(run.pk), "key": "a", "value": 1, "timestamp": 1})
    assert (response.status_code, error(response)) == (403, "PERMISSION_DENIED")


@pytest.mark.django_db
def test_stranger_gets_resource_does_not_exist(stranger, run):
    client = client_for(stranger)
    for response in (
        get(client, "runs/get", run_id=run.pk),
        get(client, "experiments/get", experiment_id=run.experiment_id),
        get(client, "experiments/get-by-name", experiment_name="mlflow-tracking"),
        post(client, "runs/log-metric", {"run_id": str(run.pk), "key": "a", "value": 1, "timestamp": 1}),
        post(client, "runs/create", {"experiment_id": str(run.experiment_id)}),
        get(client, "metrics/get-history", run_id=run.pk, metric_key="a"),
        client.get(f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.pk}/artifacts/x.txt"),
    ):
        assert (response.status_code, error(response)) == (404, "RESOURCE_DOES_NOT_EXIST")
    listed = post(client, "runs/search", {"experiment_ids": [str(run.experiment_id)]})
    assert listed.json() == {"runs": []}


@pytest.mark.django_db
def test_viewer_may_read_but_not_log(viewer, run):
    share_as(run.experiment, viewer, "viewer")
    client = client_for(viewer)
    assert get(client, "runs/get", run_id=run.pk).status_code == 200
    response = post(client, "runs/set-tag", {"run_id": str(run.pk), "key": "k", "value": "v"})
    assert (response.status_code, error(response)) == (403, "PERMISSION_DENIED")


@pytest.mark.django_db
def test_browser_session_uses_ajax_api_with_csrf(owner, run):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    assert browser.get(f"/ajax-api/2.0/mlflow/runs/get?run_id={run.pk}").status_code == 200
    body = json.dumps({"run_id": str(run.pk), "key": "k", "value": "v"})
    refused = browser.post("/ajax-api/2.0/mlflow/runs/set-tag", data=body, content_type="application/json")
    assert (refused.status_code, error(refused)) == (403, "PERMISSION_DENIED")
    assert Client().get(f"/ajax-api/2.0/mlflow/runs/get?run_id={run.pk}").status_code == 401


# --- experiments -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_experiment_create_get_by_name_and_duplicates(mlflow, owner):
    created = post(mlflow, "experiments/create", {"name": "fraud-model", "tags": [{"key": "team", "value": "risk"}]})
    experiment_id = created.json()["experiment_id"]
    got = get(mlflow, "experiments/get", experiment_id=experiment_id).json()["experiment"]
    assert got["name"] == "fraud-model"
    assert got["tags"] == [{"key": "team", "value": "risk"}]
    assert got["lifecycle_stage"] == "active" and got["artifact_location"] == f"mlflow-artifacts:/{experiment_id}"
    by_name = get(mlflow, "experiments/get-by-name", experiment_name="fraud-model").json()["experiment"]
    assert by_name["experiment_id"] == experiment_id
    again = post(mlflow, "experiments/create", {"name": "fraud-model"})
    assert (again.status_code, error(again)) == (400, "RESOURCE_ALREADY_EXISTS")
    mapped = post(mlflow, "experiments/create", {"name": "Churn Model / v2"}).json()["experiment_id"]
    found = get(mlflow, "experiments/get-by-name", experiment_name="Churn Model / v2").json()["experiment"]
    assert (found["experiment_id"], found["name"]) == (mapped, "churn-model-v2")
    bad = post(mlflow, "experiments/create", {"name": "x" * 300})
    assert error(bad) == "INVALID_PARAMETER_VALUE" and "lowercase" in bad.json()["message"]
    missing = get(mlflow, "experiments/get-by-name", experiment_name="nope")
    assert (missing.status_code, error(missing)) == (404, "RESOURCE_DOES_NOT_EXIST")
    default = get(mlflow, "experiments/get", experiment_id="0")
    assert error(default) == "RESOURCE_DOES_NOT_EXIST" and "set_experiment" in default.json()["message"]


@pytest.mark.django_db
def test_experiment_search_filters_orders_and_pages(mlflow, owner, stranger):
    for name in ("alpha-one", "alpha-two", "beta"):
        experiments.experiment_create(name=name, actor=owner, tags={"stage": "dev" if name != "beta" else "prod"})
    experiments.experiment_create(name="alpha-hidden", actor=stranger)
    names = lambda r: [e["name"] for e in r.json().get("experiments", [])]  # noqa: E731
    assert names(get(mlflow, "experiments/search", filter="name LIKE 'alpha%'", order_by="name DESC")) == [
        "alpha-two",
        "alpha-one",
    ]
    assert names(post(mlflow, "experiments/search", {"filter": "tags.stage = 'prod'"})) == ["beta"]
    first = post(mlflow, "experiments/search", {"max_results": 2, "order_by": ["name"]}).json()
    assert [e["name"] for e in first["experiments"]] == ["alpha-one", "alpha-two"]
    rest = post(
        mlflow, "experiments/search", {"max_results": 2, "order_by": ["name"], "page_token": first["next_page_token"]}
    )
    assert names(rest) == ["beta"] and "next_page_token" not in rest.json()
    assert error(get(mlflow, "experiments/search", filter="name ~ 'x'")) == "INVALID_PARAMETER_VALUE"
    assert error(get(mlflow, "experiments/search", page_token="garbage!")) == "INVALID_PARAMETER_VALUE"


# --- runs ----------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_run_lifecycle_in_mlflow_spelling(mlflow, owner, experiment):
    tags = [{"key": "mlflow.user", "value": "owner"}, {"key": "mlflow.source.name", "value": "train.py"}]
    created = post(
        mlflow, "runs/create", {"experiment_id": str(experiment.pk), "run_name": "r1", "start_time": 1, "tags": tags}
    ).json()["run"]
    run_id = created["info"]["run_id"]
    assert created["info"]["status"] == "RUNNING" and created["info"]["run_name"] == "r1"
    assert created["info"]["artifact_uri"] == f"mlflow-artifacts:/{experiment.pk}/{run_id}/artifacts"
    assert {"key": "mlflow.runName", "value": "r1"} in created["data"]["tags"]
    for step, value in enumerate((0.9, 0.7, 0.5)):
        body = {"run_id": run_id, "key": "loss", "value": value, "timestamp": 1000 + step, "step": step}
        assert post(mlflow, "runs/log-metric", body).status_code == 200
    assert post(mlflow, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}).status_code == 200
    assert post(mlflow, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"}).status_code == 200
    changed = post(mlflow, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.2"})
    assert (changed.status_code, error(changed)) == (400, "INVALID_PARAMETER_VALUE")
    post(mlflow, "runs/set-tag", {"run_id": run_id, "key": "phase", "value": "a"})
    post(mlflow, "runs/delete-tag", {"run_id": run_id, "key": "phase"})
    finished = post(mlflow, "runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": 5}).json()
    assert finished["run_info"]["status"] == "FINISHED" and finished["run_info"]["end_time"] > 0
    got = get(mlflow, "runs/get", run_id=run_id).json()["run"]
    assert got["data"]["metrics"] == [{"key": "loss", "value": 0.5, "timestamp": 1002, "step": 2}]
    assert got["data"]["params"] == [{"key": "lr", "value": "0.1"}]
    assert "phase" not in {t["key"] for t in got["data"]["tags"]}
    history = get(mlflow, "metrics/get-history", run_id=run_id, metric_key="loss").json()["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(0, 0.9), (1, 0.7), (2, 0.5)]
    paged = get(mlflow, "metrics/get-history", run_id=run_id, metric_key="loss", max_results=2).json()
    assert len(paged["metrics"]) == 2 and paged["next_page_token"]
    # the same data through the portal's own selectors
    run = Run.objects.get(pk=int(run_id))
    assert run.status == Run.Status.FINISHED and run.params == {"lr": "0.1"} and run.source == Run.Source.SCRIPT
    assert selectors.series_of(run, "loss")["values"] == [0.9, 0.7, 0.5]
    assert AuditEntry.objects.filter(actor=owner).exists()
    assert post(mlflow, "runs/delete", {"run_id": run_id}).status_code == 200
    assert error(get(mlflow, "runs/get", run_id=run_id)) == "RESOURCE_DOES_NOT_EXIST"
    assert not MetricPoint.objects.filter(run_id=int(run_id)).exists()


@pytest.mark.django_db
def test_log_batch_limits_and_values(mlflow, run):
    rid = str(run.pk)
    metrics = [{"key": "acc", "value": i / 1000, "timestamp": 1, "step": i} for i in range(1000)]
    response = post(mlflow, "runs/log-batch", {"run_id": rid, "metrics": metrics})
    assert response.status_code == 200, response.content
    assert MetricPoint.objects.filter(run_id=run.pk).count() == 1000
    params = [{"key": f"p{i}", "value": str(i)} for i in range(101)]
    assert error(post(mlflow, "runs/log-batch", {"run_id": rid, "params": params})) == "INVALID_PARAMETER_VALUE"
    too_many = [*metrics, {"key": "x", "value": 1, "timestamp": 1, "step": 0}]
    assert error(post(mlflow, "runs/log-batch", {"run_id": rid, "metrics": too_many})) == "INVALID_PARAMETER_VALUE"
    special = [
        {"key": "odd", "value": "NaN", "timestamp": "2", "step": "1"},
        {"key": "big", "value": "Infinity", "timestamp": 2, "step": 1},
    ]
    body = {
        "run_id": rid,
        "metrics": special,
        "params": [{"key": "opt", "value": "adam"}],
        "tags": [{"key": "t", "value": "1"}],
    }
    assert post(mlflow, "runs/log-batch", body).status_code == 200
    assert post(mlflow, "runs/log-batch", {"run_id": rid}).status_code == 200  # empty: nothing to do, like MLflow
    data = get(mlflow, "runs/get", run_id=rid).json()["run"]["data"]
    values = {m["key"]: m["value"] for m in data["metrics"]}
    assert values["odd"] == "NaN" and values["big"] == "Infinity" and values["acc"] == 0.999
    changed = post(mlflow, "runs/log-batch", {"run_id": rid, "params": [{"key": "opt", "value": "sgd"}]})
    assert error(changed) == "INVALID_PARAMETER_VALUE"


@pytest.mark.django_db
def test_artifact_proxy_upload_list_download(mlflow, run, owner):
    base = f"/api/2.0/mlflow-artifacts/artifacts/{run.experiment_id}/{run.pk}/artifacts"
    put = mlflow.put(f"{base}/model/model.onnx", data=b"\x00onnx", content_type="application/octet-stream")
    assert put.status_code == 200, put.content
    mlflow.put(f"{base}/notes.txt", data=b"hello", content_type="text/plain")
    root = mlflow.get("/api/2.0/mlflow-artifacts/artifacts", {"path": f"{run.experiment_id}/{run.pk}/artifacts"})
    assert root.json()["files"] == [
        {"path": "model", "is_dir": True},
        {"path": "notes.txt", "is_dir": False, "file_size": 5},
    ]
    inside = mlflow.get(
        "/api/2.0/mlflow-artifacts/artifacts", {"path": f"{run.experiment_id}/{run.pk}/artifacts/model"}
    )
    assert inside.json()["files"] == [{"path": "model.onnx", "is_dir": False, "file_size": 5}]
    listed = get(mlflow, "artifacts/list", run_id=run.pk, path="model").json()
    assert listed["files"] == [{"path": "model/model.onnx", "is_dir": False, "file_size": 5}]
    download = mlflow.get(f"{base}/notes.txt")
    assert b"".join(download.streaming_content) == b"hello"
    download_entry = AuditEntry.objects.filter(additional_data__event="artifact.download").first()
    assert download_entry is not None and download_entry.actor == owner
    for path in (f"{base}/missing.txt", f"/api/2.0/mlflow-artifacts/artifacts/999/{run.pk}/artifacts/notes.txt"):
        assert error(mlflow.get(path)) == "RESOURCE_DOES_NOT_EXIST"
    traversal = mlflow.put(f"{base}/../escape.txt", data=b"x", content_type="text/plain")
    assert error(traversal) in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    assert [a.path for a in selectors.artifacts_of(run)] == ["model/model.onnx", "notes.txt"]


# --- search --------------------------------------------------------------------------------------
@pytest.fixture
def searchable(owner, experiment):
    runs = []
    for i, (model, status) in enumerate(
        (("rf", "finished"), ("gbm", "finished"), ("rf", "failed"), ("lin", "running"))
    ):
        run = experiments.run_create(experiment=experiment, actor=owner, name=f"run-{i}", source="script")
        experiments.run_log_batch(
            run=run,
            actor=owner,
            metrics=[{"key": "rmse", "value": 1.0 - i / 10, "step": 0, "timestamp": 1}],
            params={"model": model, "depth": str(i * 2)},
            tags={"mlflow.source.type": "LOCAL" if i % 2 else "JOB"},
        )
        if status != "running":
            experiments.run_set_status(run=run, actor=owner, status=status)
        runs.append(run)
    return runs


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["info"]["run_name"] for r in response.json().get("runs", [])]


@pytest.mark.django_db
def test_run_search_filter_and_order_syntax(mlflow, experiment, searchable):
    def search(filter_string="", order_by=(), **extra):
        body = {"experiment_ids": [str(experiment.pk)], "filter": filter_string, "order_by": list(order_by), **extra}
        return post(mlflow, "runs/search", body)

    assert _names(search("metrics.rmse < 0.85", ["metrics.rmse ASC"])) == ["run-3", "run-2"]
    assert _names(search("params.model = 'rf'", ["attributes.run_name"])) == ["run-0", "run-2"]
    assert _names(search("params.model != 'rf' and metrics.rmse >= 0.7", ["metrics.rmse DESC"])) == ["run-1", "run-3"]
    assert _names(search("tags.`mlflow.source.type` LIKE 'LOC%'", ["run_name DESC"])) == ["run-3", "run-1"]
    assert _names(search("tags.mlflow.source.type ILIKE 'job'", ["run_name"])) == ["run-0", "run-2"]
    assert _names(search("attributes.status = 'FINISHED'", ["params.model"])) == ["run-1", "run-0"]
    assert _names(search("attributes.status IN ('FAILED', 'RUNNING')", ["attributes.run_name"])) == ["run-2", "run-3"]
    assert _names(search("run_name LIKE '%-1'")) == ["run-1"]
    assert _names(search("attributes.start_time > 0 and tags.nothing IS NULL", ["run_name"])) == [
        "run-0", "run-1", "run-2", "run-3",
    ]  # fmt: skip
    run_ids = [str(searchable[1].pk), str(searchable[2].pk)]
    assert _names(search(f"attributes.run_id IN ('{run_ids[0]}', '{run_ids[1]}')", ["run_name"])) == ["run-1", "run-2"]
    assert _names(search("", [])) == ["run-3", "run-2", "run-1", "run-0"]  # newest first
    page = search("", ["run_name"], max_results=3).json()
    rest = search("", ["run_name"], max_results=3, page_token=page["next_page_token"]).json()
    assert [r["info"]["run_name"] for r in page["runs"] + rest["runs"]] == ["run-0", "run-1", "run-2", "run-3"]
    full = search("params.model = 'gbm'").json()["runs"][0]
    assert full["data"]["params"] == [{"key": "depth", "value": "2"}, {"key": "model", "value": "gbm"}]  # by key
    assert full["data"]["metrics"][0]["key"] == "rmse"
    for bad in ("metrics.rmse = 'x'", "params.model > 1", "rmse < 1", "metrics.rmse < 1 or metrics.rmse > 2",
                "datasets.name = 'x'", "attributes.status = 'DONE'", "params.model IN (1, 2)"):  # fmt: skip
        assert error(search(bad)) == "INVALID_PARAMETER_VALUE", bad
    assert error(search("", ["metrics.rmse SIDEWAYS x"])) == "INVALID_PARAMETER_VALUE"


@pytest.mark.django_db
def test_search_queries_do_not_grow_with_rows(mlflow, owner, experiment, searchable):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost(call: str, body: dict) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = post(mlflow, call, body)
        assert response.status_code == 200, response.content
        rows = response.json().get("runs" if call == "runs/search" else "experiments", [])
        return len(queries), len(rows)

    runs = {"experiment_ids": [str(experiment.pk)], "order_by": ["metrics.rmse DESC", "params.model"]}
    experiments_body = {"filter": "name LIKE 'mlflow%'", "order_by": ["name"]}
    cost("runs/search", runs)  # warm: permission and content-type ids are read once per process
    before = cost("runs/search", runs), cost("experiments/search", experiments_body)
    for i in range(4):
        extra = experiments.run_create(experiment=experiment, actor=owner, name=f"more-{i}", source="script")
        experiments.run_log_batch(
            run=extra, actor=owner, metrics=[{"key": "rmse", "value": 0.1, "step": 0}], params={"a": "1"}
        )
        experiments.experiment_create(name=f"mlflow-more-{i}", actor=owner)
    after = cost("runs/search", runs), cost("experiments/search", experiments_body)
    assert [n for n, _ in before] == [n for n, _ in after]
    assert [rows for _, rows in before] == [4, 1] and [rows for _, rows in after] == [8, 5]


@pytest.mark.django_db
def test_log_metric_query_count(mlflow, run, django_assert_max_num_queries):
    body = {"run_id": str(run.pk), "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
    post(mlflow, "runs/log-metric", body)  # warm: first point of the key, caches
    body["step"] = 1
    with django_assert_max_num_queries(7):
        assert post(mlflow, "runs/log-metric", body).status_code == 200


@pytest.mark.django_db
def test_hostile_input_never_answers_500(mlflow, run, experiment):
    rid, eid = str(run.pk), str(experiment.pk)
    calls = [
        ("runs/search", {"experiment_ids": [eid], "filter": "params.p = 'a\x00b'"}),
        ("runs/search", {"experiment_ids": [eid], "filter": "tags.t = '\ud800'"}),
        ("runs/search", {"experiment_ids": [eid], "order_by": ["tags.`a\x00` DESC"]}),
        ("runs/search", {"experiment_ids": [{"id": 1}], "max_results": "many"}),
        ("runs/search", {"experiment_ids": eid, "filter": "metrics.m > 1e999 and attributes.start_time < 1e300"}),
        ("runs/search", {"experiment_ids": [eid], "filter": "(" * 500, "order_by": "metrics.m"}),
        ("runs/search", {"experiment_ids": [eid], "max_results": 10**30, "page_token": 12}),
        ("experiments/search", {"filter": "name = 'x\x00'", "order_by": [{"a": 1}]}),
        ("experiments/create", {"name": "bad\x00name"}),
        ("experiments/create", {"name": ["a", "b"], "tags": {"k": "v"}}),
        ("runs/create", {"experiment_id": eid, "tags": [{"key": 1, "value": {"x": 1}}], "start_time": -5}),
        ("runs/create", {"experiment_id": eid, "run_name": "n" * 500, "start_time": 10**20}),
        ("runs/update", {"run_id": rid, "status": "DONE", "end_time": "x"}),
        ("runs/log-batch", {"run_id": rid, "metrics": [{"key": None, "value": [1], "timestamp": {}}]}),
        ("runs/log-batch", {"run_id": rid, "metrics": "all", "params": [None], "tags": [{"key": "k"}]}),
        ("runs/log-batch", {"run_id": rid, "params": [{"key": "p", "value": "\ud800"}]}),
        ("runs/log-parameter", {"run_id": rid, "key": "p", "value": "x" * 7000}),
        ("runs/set-tag", {"run_id": rid, "key": "mlflow.runName", "value": "n" * 300}),
        ("runs/log-metric", {"run_id": "1" * 40, "key": "k", "value": 1, "timestamp": 1}),
        ("runs/log-metric", {"run_id": rid, "key": "k", "value": 1, "timestamp": 1, "step": -1}),
        ("experiments/set-experiment-tag", {"experiment_id": eid, "key": "bad key!", "value": "v"}),
    ]
    for path, body in calls:
        response = post(mlflow, path, body)
        assert response.status_code < 500 and "error_code" in response.json(), (path, body, response.content[:300])
    deep = mlflow.post(f"{API}/runs/log-batch", data="[" * 100_000, content_type="application/json")
    assert error(deep) == "INVALID_PARAMETER_VALUE"
    for path, params in (
        ("metrics/get-history", {"run_id": rid, "metric_key": "bad key!"}),
        ("metrics/get-history", {"run_id": rid, "metric_key": "k", "max_results": -1}),
        ("experiments/get", {"experiment_id": "9" * 40}),
        ("runs/get", {"run_id": ["1", "2"]}),
        ("artifacts/list", {"run_id": rid, "path": "../.."}),
    ):
        response = get(mlflow, path, **params)
        assert response.status_code < 500 and "error_code" in response.json(), (path, params, response.content[:300])
