"""Query counts of every experiments list (API and pages) stay the same at 5 and at 50 rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.permissions import share
from apps.experiments import services
from tests.conftest import api_client_for, page_client_for
from tests.experiments.factories import experiment, run

pytestmark = pytest.mark.django_db


def _queries(client, url: str) -> int:
    client.get(url)  # warm caches (content types, the user's role permissions)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    return len(ctx.captured_queries)


def _experiments(owner, collaborator, start: int, count: int) -> None:
    for i in range(start, start + count):
        exp = experiment(owner, name=f"exp-{i:03d}", tags={"area": "risk"})
        share(exp, role="viewer", user=collaborator)  # rows reached through object permissions
        run(exp, owner, name="only")


def _runs(exp, owner, start: int, count: int) -> None:
    for i in range(start, start + count):
        r = run(exp, owner, name=f"run-{i:03d}", params={"lr": 0.01 * (i + 1)}, tags={"seed": str(i)})
        services.run_log_batch(
            run=r,
            actor=owner,
            metrics=[{"key": "loss", "step": 0, "value": 1.0 / (i + 1)}, {"key": "acc", "step": 0, "value": 0.5}],
        )


@pytest.mark.parametrize(
    "url, client_for",
    [("/api/v1/experiments/?page_size=100", api_client_for), ("/experiments/", page_client_for)],
)
def test_experiment_lists_cost_the_same_at_5_and_50_rows(owner, collaborator, url, client_for):
    _experiments(owner, collaborator, 0, 5)
    client = client_for(collaborator)
    few = _queries(client, url)
    _experiments(owner, collaborator, 5, 45)
    assert _queries(client, url) == few


@pytest.mark.parametrize("scope", ["all", "experiment"])
def test_runs_list_api_costs_the_same_at_5_and_50_rows(owner, scope):
    exp = experiment(owner)
    _runs(exp, owner, 0, 5)
    url = "/api/v1/runs/?page_size=100&order_by=-metrics.loss" + (
        f"&experiment={exp.pk}" if scope == "experiment" else ""
    )
    client = api_client_for(owner)
    few = _queries(client, url)
    _runs(exp, owner, 5, 45)
    assert _queries(client, url) == few
    assert client.get(url).json()["count"] == 50


def test_runs_table_on_the_experiment_page_costs_the_same_at_5_and_50_rows(owner):
    exp = experiment(owner)
    _runs(exp, owner, 0, 5)
    url = f"/experiments/{exp.pk}/?page_size=100&sort=-metrics.loss&metric=loss&param=lr"
    client = page_client_for(owner)
    few = _queries(client, url)
    _runs(exp, owner, 5, 45)
    assert _queries(client, url) == few


def test_run_metrics_and_artifact_lists_cost_the_same_at_5_and_50_rows(owner):
    r = run(experiment(owner), owner)

    def log(start: int, count: int) -> None:
        metrics = [{"key": f"m{i:03d}", "step": 0, "value": float(i)} for i in range(start, start + count)]
        services.run_log_batch(run=r, actor=owner, metrics=metrics)
        for i in range(start, start + count):
            services.run_artifact_add(run=r, actor=owner, path=f"plots/p{i:03d}.png", size=1, uri=f"s3://b/p{i}.png")

    log(0, 5)
    client = api_client_for(owner)
    urls = [f"/api/v1/runs/{r.pk}/metrics/", f"/api/v1/runs/{r.pk}/artifacts?page_size=100", f"/api/v1/runs/{r.pk}/"]
    few = [_queries(client, url) for url in urls]
    page_few = _queries(page_client_for(owner), f"/runs/{r.pk}/")
    log(5, 45)
    assert [_queries(client, url) for url in urls] == few
    assert _queries(page_client_for(owner), f"/runs/{r.pk}/") == page_few
    assert len(client.get(urls[0]).json()) == 50
