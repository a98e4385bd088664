import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.experiments.dashboard import cards
from apps.experiments.services import run_artifact_add, run_log_batch, run_log_system_metrics
from tests.experiments.factories import experiment, points, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def populated(owner):
    exp = experiment(owner, description="churn model experiments")
    runs = []
    for i in range(12):
        r = run(exp, owner, name=f"run-{i:02d}", params={"lr": 10 ** -(i % 4), "optimizer": "adam" if i % 2 else "sgd"})
        run_log_batch(
            run=r, actor=owner, metrics=points("loss", 20) + [{"key": "val_acc", "step": 19, "value": i / 12}]
        )
        runs.append(r)
    return exp, runs


def test_experiment_pages_for_owner(client, owner, populated):
    exp, runs = populated
    client.force_login(owner)
    page = client.get("/experiments/")
    assert page.status_code == 200 and b"churn" in page.content
    response = client.get(f"/experiments/{exp.pk}/?sort=-metrics.val_acc&metric=val_acc&param=lr")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("run-11") < body.index("run-10") < body.index("run-00")
    filtered = client.get(f"/experiments/{exp.pk}/", {"filter": "metrics.val_acc > 0.8 and params.optimizer = 'adam'"})
    names = [r.name for r in runs if r.name in filtered.content.decode()]
    assert names == ["run-11"]


def test_bad_filter_is_explained_not_500(client, owner, populated):
    exp, _ = populated
    client.force_login(owner)
    response = client.get(f"/experiments/{exp.pk}/", {"filter": "metrics.val_acc >> 1"})
    assert response.status_code == 200
    assert b"Cannot read the filter" in response.content or b"Expected a number" in response.content
    assert client.get(f"/experiments/{exp.pk}/", {"sort": "nonsense"}).status_code == 200
    assert client.get(f"/experiments/{exp.pk}/", {"page_size": "7"}).status_code == 200


def test_runs_table_query_count_is_bounded(client, owner, populated):
    exp, _ = populated
    client.force_login(owner)
    client.get(f"/experiments/{exp.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/experiments/{exp.pk}/?sort=-metrics.val_acc")
    for i in range(30):
        r = run(exp, owner, name=f"more-{i}", params={"lr": 0.1})
        run_log_batch(run=r, actor=owner, metrics=[{"key": "val_acc", "step": 0, "value": 0.5}])
    with CaptureQueriesContext(connection) as many:
        client.get(f"/experiments/{exp.pk}/?sort=-metrics.val_acc")
    # 13, + the user's saved columns and the primary metrics named by tags
    assert len(many.captured_queries) == len(few.captured_queries) <= 15


def test_run_and_compare_pages(client, owner, populated):
    exp, runs = populated
    run_log_system_metrics(run=runs[0], actor=owner, cpu_percent=55.0, memory_percent=31.5)
    run_artifact_add(run=runs[0], actor=owner, path="model.onnx", size=2048, digest="sha256:abc")
    client.force_login(owner)
    page = client.get(f"/runs/{runs[0].pk}/")
    assert page.status_code == 200
    assert b"model.onnx" in page.content and b"plotly.min.js" in page.content and b"optimizer" in page.content
    compare = client.get(f"/experiments/{exp.pk}/compare/?runs={runs[0].pk}&runs={runs[1].pk}")
    assert compare.status_code == 200 and b"compare-data" in compare.content
    one = client.get(f"/experiments/{exp.pk}/compare/?runs={runs[0].pk}")
    assert one.status_code == 302
    assert client.get(f"/experiments/{exp.pk}/compare/?runs=abc").status_code == 404


def test_strangers_get_404_pages(client, stranger, populated):
    exp, runs = populated
    client.force_login(stranger)
    assert f"/experiments/{exp.pk}/".encode() not in client.get("/experiments/").content
    for url in (
        f"/experiments/{exp.pk}/",
        f"/runs/{runs[0].pk}/",
        f"/experiments/{exp.pk}/compare/?runs={runs[0].pk}&runs={runs[1].pk}",
    ):
        assert client.get(url).status_code == 404, url
    assert cards(stranger)[0]["value"] == 0


def test_create_experiment_in_browser(client, owner, team):
    client.force_login(owner)
    response = client.post("/experiments/", {"name": "Not A Slug!", "description": ""})
    assert response.status_code == 200 and b"is-invalid" in response.content
    response = client.post("/experiments/", {"name": "vision", "description": "cnn", "team": team.pk})
    assert response.status_code == 302
    assert client.post("/experiments/", {"name": "vision"}).status_code == 200  # duplicate: form error
    assert cards(owner)[0]["value"] == 1


def test_anonymous_redirected(client, populated):
    exp, _ = populated
    assert client.get(f"/experiments/{exp.pk}/").status_code == 302
