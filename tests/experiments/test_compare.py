"""The compare page: params and metrics side by side with differences flagged, a sensible default
chart whose curves come with the page, and under a second for 10 runs of 1,000 points."""

import json
import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.experiments.services import run_log_batch
from tests.conftest import page_client_for
from tests.experiments.factories import experiment, run

pytestmark = pytest.mark.django_db


def make_runs(owner, count: int, points: int = 1000, exp=None, val_every: int = 100):
    exp = exp or experiment(owner)
    runs = []
    for i in range(count):
        r = run(exp, owner, name=f"r{i}", params={"lr": 10 ** -(i % 3 + 2), "batch_size": 64, "optimizer": "adam"})
        metrics = [{"key": "loss", "step": s, "value": 1 / (1 + s + i)} for s in range(points)]
        metrics += [{"key": "epoch", "step": s, "value": float(s // 100)} for s in range(0, points, 100)]
        metrics += [
            {"key": "val_acc", "step": s, "value": 0.5 + i / 100 + s / 1e5} for s in range(0, points, val_every)
        ]
        for chunk in range(0, len(metrics), 1000):
            run_log_batch(run=r, actor=owner, metrics=metrics[chunk : chunk + 1000])
        runs.append(r)
    return exp, runs


def url(exp, runs) -> str:
    return f"/experiments/{exp.pk}/compare/?" + "&".join(f"runs={r.pk}" for r in runs)


def test_compare_shows_params_and_metrics_side_by_side_with_differences_flagged(owner):
    exp, runs = make_runs(owner, 3, points=200)
    html = page_client_for(owner).get(url(exp, runs)).content.decode()
    rows = {key: classes for classes, key in re.findall(r'<tr class="([^"]+)" data-key="([^"]+)"', html)}
    assert "differs" in rows["params.lr"] and "differs" not in rows["params.batch_size"]
    assert "differs" in rows["metrics.val_acc"]
    assert html.index('data-key="metrics.val_acc"') < html.index('data-key="metrics.epoch"')


def test_compare_opens_on_the_validation_metric_and_a_param_that_differs(owner):
    exp, runs = make_runs(owner, 3, points=200)
    html = page_client_for(owner).get(url(exp, runs)).content.decode()
    data = json.loads(
        re.search(r'<script id="compare-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    )
    assert data["default_metric"] == "val_acc"  # not epoch
    assert data["varying_params"] == ["lr"] and data["param_keys"][0] == "lr"  # not batch_size (the same for all)
    assert data["series"]["key"] == "val_acc"
    assert all(len(data["series"]["runs"][str(r.pk)]["steps"]) == 2 for r in runs)


def test_compare_loads_10_runs_of_1000_points_in_under_a_second_with_bounded_queries(owner):
    exp, runs = make_runs(owner, 10, val_every=1)  # the default chart's metric: 1,000 points per run
    client = page_client_for(owner)
    client.get(url(exp, runs[:3]))  # warm caches (content types, templates)
    with CaptureQueriesContext(connection) as few:
        client.get(url(exp, runs[:3]))
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as many:
        response = client.get(url(exp, runs))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    data = json.loads(
        re.search(r'id="compare-data" type="application/json">(.*?)</script>', response.content.decode()).group(1)
    )
    assert data["series"]["key"] == "val_acc" and len(data["series"]["runs"][str(runs[0].pk)]["steps"]) == 1000
    print(f"compare, 10 runs: {elapsed:.3f} s")
    assert elapsed < 1.0, f"{elapsed:.2f} s"
    assert len(many.captured_queries) == len(few.captured_queries) <= 12
