import math

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.experiments.models import MetricPoint, Run, RunMetricSummary
from apps.experiments.services import run_log_batch
from tests.conftest import api_client_for
from tests.experiments.factories import experiment, points, run
from tests.permissions import StrangerDeniedMixin

pytestmark = pytest.mark.django_db


class TestExperimentStranger(StrangerDeniedMixin):
    list_url = "/api/v1/experiments/"
    change_payload = {"description": "hijacked"}

    def make_object(self, owner):
        return experiment(owner)

    def detail_url(self, obj):
        return f"/api/v1/experiments/{obj.pk}/"


class TestRunStranger(StrangerDeniedMixin):
    list_url = "/api/v1/runs/"
    change_payload = {"name": "hijacked"}

    def make_object(self, owner):
        r = run(experiment(owner), owner)
        run_log_batch(run=r, actor=owner, metrics=points("loss", 5))
        return r

    def detail_url(self, obj):
        return f"/api/v1/runs/{obj.pk}/"

    def extra_urls(self, obj):
        return [f"/api/v1/runs/{obj.pk}/metrics/loss", f"/api/v1/runs/{obj.pk}/metrics/"]

    def test_stranger_cannot_log(self, stranger, target):
        response = api_client_for(stranger).post(
            f"/api/v1/runs/{target.pk}/log-batch", {"metrics": points("loss", 2, 10)}, format="json"
        )
        assert response.status_code == 404
        assert MetricPoint.objects.filter(run=target).count() == 5


def test_create_experiment_and_run_then_log(api_owner, owner):
    r = api_owner.post(
        "/api/v1/experiments/", {"name": "fraud", "description": "d", "tags": {"area": "risk"}}, format="json"
    )
    assert r.status_code == 201, r.content
    exp_id = r.json()["id"]
    assert api_owner.post("/api/v1/experiments/", {"name": "fraud"}, format="json").status_code == 400
    r = api_owner.post(
        "/api/v1/runs/", {"experiment": exp_id, "name": "baseline", "params": {"lr": 0.01}}, format="json"
    )
    assert r.status_code == 201, r.content
    run_id = r.json()["id"]
    body = {
        "metrics": points("loss", 1000),
        "params": {"epochs": 10, "optimizer": "adam"},
        "tags": {"dataset": "v3"},
    }
    r = api_owner.post(f"/api/v1/runs/{run_id}/log-batch", body, format="json")
    assert r.status_code == 200, r.content
    assert r.json() == {"metrics": 1000, "params": 2, "tags": 1}
    detail = api_owner.get(f"/api/v1/runs/{run_id}/").json()
    assert detail["params"] == {"lr": "0.01", "epochs": "10", "optimizer": "adam"}
    assert detail["metrics"]["loss"] == pytest.approx(1 / 1000)
    summary = RunMetricSummary.objects.get(run_id=run_id, key="loss")
    assert (summary.count, summary.min, summary.max, summary.last_step) == (1000, pytest.approx(1 / 1000), 1.0, 999)


def test_log_batch_validation_writes_nothing(api_owner, owner):
    r0 = run(experiment(owner), owner)
    url = f"/api/v1/runs/{r0.pk}/log-batch"
    cases = [
        ({"metrics": points("loss", 1001)}, "metrics", "At most 1000"),
        ({"metrics": [{"key": "bad key!", "value": 1, "step": 0}]}, "metrics", "not allowed"),
        ({"metrics": [{"key": "loss", "value": "high", "step": 0}]}, "metrics", "must be a number"),
        ({"metrics": [{"key": "loss", "value": True, "step": 0}]}, "metrics", "not true/false"),
        ({"metrics": [{"key": "loss", "value": 1, "step": -1}]}, "metrics", "step must be between"),
        ({"metrics": [{"key": "loss", "value": 1, "step": 1.5}]}, "metrics", "step must be an integer"),
        ({"metrics": [{"key": "loss", "step": 1}]}, "metrics", "value is required"),
        ({"metrics": [{"key": "loss", "value": 1, "extra": 1}]}, "metrics", "unknown field"),
        ({"metrics": "loss=1"}, "metrics", "Send a list"),
        ({"params": {f"p{i}": i for i in range(101)}}, "params", "At most 100"),
        ({"params": {"lr": [1, 2]}}, "params", "must be a string"),
        ({"tags": {"t": "x" * 5001}}, "tags", "longer than"),
        ({"junk": 1}, "junk", "Unknown field"),
        ({}, "detail", "Nothing to log"),
        ([1, 2], "detail", "JSON object"),
    ]
    for body, field, fragment in cases:
        response = api_owner.post(url, body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert fragment in str(response.json()[field]), (field, response.json())
    # one bad point among good ones: the whole batch is refused
    bad = points("loss", 10) + [{"key": "loss", "value": "oops", "step": 11}]
    response = api_owner.post(url, {"metrics": bad, "params": {"a": 1}}, format="json")
    assert "item 10" in response.json()["metrics"][0]
    assert MetricPoint.objects.filter(run=r0).count() == 0
    assert Run.objects.get(pk=r0.pk).params == {}
    # raw NaN is not JSON: a clear 400, never a 500
    response = api_owner.post(url, data='{"metrics": [{"key": "a", "value": NaN}]}', content_type="application/json")
    assert response.status_code == 400


def test_non_finite_values_and_param_conflict(api_owner, owner):
    r0 = run(experiment(owner), owner, params={"lr": "0.1"})
    url = f"/api/v1/runs/{r0.pk}/log-batch"
    body = {
        "metrics": [
            {"key": "loss", "value": "NaN", "step": 0},
            {"key": "loss", "value": "Infinity", "step": 1},
            {"key": "loss", "value": "-inf", "step": 2},
            {"key": "loss", "value": 0.5, "step": 3},
        ]
    }
    assert api_owner.post(url, body, format="json").status_code == 200
    series = api_owner.get(f"/api/v1/runs/{r0.pk}/metrics/loss").json()
    assert series["values"][0] is None
    assert series["values"][1] == pytest.approx(1.7976931348623157e308) and math.isfinite(series["values"][1])
    assert series["values"][2] == pytest.approx(-1.7976931348623157e308)
    s = RunMetricSummary.objects.get(run=r0, key="loss")
    assert s.last == 0.5 and s.count == 4
    r = api_owner.post(url, {"params": {"lr": "0.2"}}, format="json")
    assert r.status_code == 409 and "cannot change" in r.json()["detail"]
    assert api_owner.post(url, {"params": {"lr": "0.1"}}, format="json").status_code == 200


def test_series_downsampling_and_catch_up(api_owner, owner):
    r0 = run(experiment(owner), owner)
    for start in range(0, 5000, 1000):
        run_log_batch(
            run=r0, actor=owner, metrics=points("loss", 1000, start, fn=lambda s: 5.0 if s == 3210 else 1.0 / (1 + s))
        )
    base = f"/api/v1/runs/{r0.pk}/metrics/loss"
    full = api_owner.get(base).json()
    assert full["total"] == full["returned"] == 5000 and not full["downsampled"]
    small = api_owner.get(base + "?max_points=100").json()
    assert small["downsampled"] and small["returned"] <= 100
    assert small["steps"][0] == 0 and small["steps"][-1] == 4999 and 3210 in small["steps"]
    lttb = api_owner.get(base + "?max_points=100&method=lttb").json()
    assert lttb["returned"] <= 100 and 3210 in lttb["steps"]
    tail = api_owner.get(base + "?after_step=4990").json()
    assert tail["steps"] == list(range(4991, 5000))
    for query, field in [
        ("max_points=2", "max_points"),
        ("max_points=abc", "max_points"),
        ("method=eval", "method"),
        ("after_step=-5", "after_step"),
    ]:
        response = api_owner.get(f"{base}?{query}")
        assert response.status_code == 400 and field in response.json(), query
    assert api_owner.get(f"/api/v1/runs/{r0.pk}/metrics/nope").json()["total"] == 0
    keys = api_owner.get(f"/api/v1/runs/{r0.pk}/metrics/").json()
    assert keys[0]["key"] == "loss" and keys[0]["count"] == 5000


def test_run_list_filter_sort_and_query_count(api_owner, owner):
    exp = experiment(owner)
    for i in range(30):
        r = run(exp, owner, name=f"r{i:02d}", params={"lr": 0.001 * (i + 1)})
        run_log_batch(run=r, actor=owner, metrics=[{"key": "val_acc", "step": 0, "value": i / 30}])
    url = f"/api/v1/runs/?experiment={exp.pk}&order_by=-metrics.val_acc&page_size=10"
    api_owner.get(url)  # the caller (token, user, roles) is cached per process after the first request
    with CaptureQueriesContext(connection) as ctx:
        body = api_owner.get(url).json()
    assert body["count"] == 30 and body["results"][0]["name"] == "r29"
    # 9, + the page's model versions and the catalog's content type (cached after the first request)
    assert len(ctx.captured_queries) <= 11, "\n".join(q["sql"][:150] for q in ctx.captured_queries)
    body = api_owner.get(f"/api/v1/runs/?experiment={exp.pk}&filter=metrics.val_acc > 0.5 and params.lr < 0.02").json()
    assert sorted(r["name"] for r in body["results"]) == ["r16", "r17", "r18"]
    bad = api_owner.get(f"/api/v1/runs/?experiment={exp.pk}&filter=metrics.val_acc >> 1")
    assert bad.status_code == 400 and "filter" in bad.json()
    assert api_owner.get("/api/v1/runs/?order_by=bogus").status_code == 400
    assert api_owner.get("/api/v1/runs/?status=flying").status_code == 400
    assert api_owner.get("/api/v1/runs/?experiment=x").status_code == 400


def test_status_transitions(api_owner, owner):
    r0 = run(experiment(owner), owner)
    url = f"/api/v1/runs/{r0.pk}/"
    assert api_owner.patch(url, {"progress": 0.4}, format="json").json()["progress"] == 0.4
    assert api_owner.patch(url, {"progress": 1.4}, format="json").status_code == 400
    done = api_owner.patch(url, {"status": "finished"}, format="json").json()
    assert done["status"] == "finished" and done["progress"] == 1.0 and done["ended_at"]
    r = api_owner.patch(url, {"status": "running"}, format="json")
    assert r.status_code == 409 and "cannot become" in r.json()["detail"]


def test_viewer_can_read_not_write(owner, collaborator):
    from apps.core.permissions import share

    exp = experiment(owner)
    r0 = run(exp, owner)
    share(exp, role="viewer", user=collaborator)
    client = api_client_for(collaborator)
    assert client.get(f"/api/v1/runs/{r0.pk}/").status_code == 200
    assert client.post(f"/api/v1/runs/{r0.pk}/log-batch", {"metrics": points("x", 1)}, format="json").status_code == 403
    assert client.post("/api/v1/runs/", {"experiment": exp.pk, "name": "mine"}, format="json").status_code == 403
    read_only = api_client_for(owner, scopes=("read",))
    assert (
        read_only.post(f"/api/v1/runs/{r0.pk}/log-batch", {"metrics": points("x", 1)}, format="json").status_code == 403
    )


def test_team_experiment_is_shared_with_team(api_owner, team, collaborator, stranger):
    r = api_owner.post("/api/v1/experiments/", {"name": "teamwork", "team": "risk"}, format="json")
    assert r.status_code == 201, r.content
    exp_id = r.json()["id"]
    assert api_client_for(collaborator).get(f"/api/v1/experiments/{exp_id}/").status_code == 200
    assert api_client_for(stranger).get(f"/api/v1/experiments/{exp_id}/").status_code == 404
    assert (
        api_client_for(stranger).post("/api/v1/experiments/", {"name": "x", "team": "risk"}, format="json").status_code
        == 400
    )
