"""The MLflow-compatible API's tracking calls and artifact proxy (the registry's are in
test_mlflow_registry.py): runs answer as their experiment does; a stranger gets 404
(RESOURCE_DOES_NOT_EXIST), a caller without credentials 401 (UNAUTHENTICATED), a token without
the scope 403, and anything outside the route table 404 (ENDPOINT_NOT_FOUND) for everyone.

`test_every_mlflow_route_has_a_row` walks the MLflow route table (apps/mlflow_api/protocol.py):
one catch-all URL pattern serves it all, so the URLconf walk alone would not see a new call."""

from __future__ import annotations

import io

from tests.access.matrix import AccessMatrix, api_changes, api_collection, api_reads

M = "/api/2.0/mlflow"
A = "/api/2.0/mlflow-artifacts/artifacts"
RUN = "{experiment}/{run}/artifacts"
NOWHERE = dict(owner=404, viewer=404, editor=404, team=404, stranger=404, admin=404, anon=404)
SESSION_READS = dict(owner=200, viewer=200, editor=200, team=200, stranger=404, admin=200, anon=401)


def tracked(owner, team) -> dict:
    """An experiment whose run has a metric, a param, a tag and an artifact."""
    from apps.experiments import services

    experiment = services.experiment_create(name="mlflow-access", actor=owner)
    run = services.run_create(experiment=experiment, actor=owner, name="run-1", source="script", tags={"t": "1"})
    services.run_log_batch(run=run, actor=owner, metrics=[{"key": "loss", "step": 0, "value": 0.5}], params={"p": "1"})
    data = b"hello"
    services.run_artifact_upload(run=run, actor=owner, src=io.BytesIO(data), size=len(data), path="notes.txt")
    return {"share": [experiment], "experiment": experiment.pk, "run": run.pk}


def on_run(**fields):
    return lambda world: {"run_id": str(world.params["run"]), **fields}


def on_experiment(**fields):
    return lambda world: {"experiment_id": str(world.params["experiment"]), **fields}


class TestMlflowTrackingAccess(AccessMatrix):
    make = staticmethod(tracked)
    rows = {
        ("POST", f"{M}/experiments/create"): api_collection(body={"name": "fresh-from-mlflow"}),
        ("GET", f"{M}/experiments/get?experiment_id={{experiment}}"): api_reads(),
        ("GET", f"{M}/experiments/get-by-name?experiment_name=mlflow-access"): api_reads(),
        ("GET", f"{M}/experiments/search"): api_collection(),
        ("POST", f"{M}/experiments/search"): api_collection(body={}, scopes=("write",)),
        ("POST", f"{M}/experiments/set-experiment-tag"): api_changes(body=on_experiment(key="k", value="v")),
        ("POST", f"{M}/runs/create"): api_changes(body=on_experiment(run_name="r2")),
        ("GET", f"{M}/runs/get?run_id={{run}}"): api_reads(),
        ("POST", f"{M}/runs/update"): api_changes(body=on_run(status="FINISHED")),
        ("POST", f"{M}/runs/delete"): api_changes(body=on_run(), editor=403),  # deleting is the owner's (and admins')
        ("GET", f"{M}/runs/search?experiment_ids={{experiment}}"): api_collection(),
        ("POST", f"{M}/runs/search"): api_collection(body=on_experiment(), scopes=("write",)),
        ("POST", f"{M}/runs/log-metric"): api_changes(body=on_run(key="loss", value=0.4, timestamp=1, step=1)),
        ("POST", f"{M}/runs/log-parameter"): api_changes(body=on_run(key="p2", value="2")),
        ("POST", f"{M}/runs/log-batch"): api_changes(body=on_run(tags=[{"key": "t2", "value": "2"}])),
        ("POST", f"{M}/runs/set-tag"): api_changes(body=on_run(key="t3", value="3")),
        ("POST", f"{M}/runs/delete-tag"): api_changes(body=on_run(key="t")),
        ("GET", f"{M}/metrics/get-history?run_id={{run}}&metric_key=loss"): api_reads(),
        ("GET", f"{M}/artifacts/list?run_id={{run}}"): api_reads(),
        ("POST", f"{M}/logged-models/search"): api_reads(
            body=lambda w: {"experiment_ids": [str(w.params["experiment"])]}, scopes=("write",)
        ),
        ("GET", f"{A}?path={RUN}"): api_reads(),
        ("GET", f"{A}/{RUN}/notes.txt"): api_reads(),
        ("PUT", f"{A}/{RUN}/more.txt"): api_changes(body={"any": "bytes"}),
        # the browser's spelling: session users (CSRF applies to their writes), no tokens
        ("GET", "/ajax-api/2.0/mlflow/runs/get?run_id={run}"): SESSION_READS,
        ("GET", f"/ajax-api/2.0/mlflow-artifacts/artifacts?path={RUN}"): SESSION_READS,
        # outside the route table: MLflow's 404 shape for everyone, before any credentials are asked
        ("GET", "/api/3.0/mlflow/logged-models/search"): NOWHERE,
        ("POST", f"{M}/runs/restore"): NOWHERE,
    }


def mlflow_rows_missing() -> list[tuple[str, str, str]]:
    """(api, method, path) of every MLflow route no matrix row (in any tests/access/test_*.py) calls."""
    from apps.mlflow_api import urls  # noqa: F401  (fills the route table)
    from apps.mlflow_api.protocol import ROUTES
    from tests.access.test_completeness import matrix_classes

    called = {
        (method, path.split("?")[0].replace("/ajax-api/", "/api/"))
        for cls in matrix_classes()
        for method, path in cls.rows
    }
    missing = []
    for (api, method, path), route in ROUTES.items():
        url = f"/api/2.0/{api}/{path}"
        if not any(m == method and (p == url or (route.prefix and p.startswith(f"{url}/"))) for m, p in called):
            missing.append((api, method, path))
    return sorted(missing)


def test_every_mlflow_route_has_a_row():
    missing = mlflow_rows_missing()
    assert not missing, "MLflow calls without an access-matrix row (add one in tests/access/test_mlflow_*.py):\n" + (
        "\n".join(f"  {method} /api/2.0/{api}/{path}" for api, method, path in missing)
    )
