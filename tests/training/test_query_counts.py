"""List endpoints and list pages of training cost the same number of queries at 5 and at 50 rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.permissions import grant_owner
from apps.experiments.services import experiment_create
from apps.training.models import Sweep
from apps.training.services import job_launch
from tests.conftest import api_client_for, page_client_for
from tests.training.conftest import TINY

pytestmark = pytest.mark.django_db


def _jobs(owner, team, count: int) -> None:
    for i in range(count):  # some for the team, so the team column is joined too
        job_launch(actor=owner, template="tabular-mlp-classifier", params=TINY, team="risk" if i % 2 else None)


def _sweeps(owner, team, count: int) -> None:
    experiment = experiment_create(actor=owner, name=f"sweeps-{count}")
    for i in range(count):
        sweep = Sweep.objects.create(
            owner=owner, team=team if i % 2 else None, name=f"s{i}", template="tabular-mlp-classifier",
            method="grid", space={"lr": {"values": [0.01]}}, metric="val_loss", mode="min", max_trials=1,
            parallelism=1, experiment=experiment,
        )  # fmt: skip
        grant_owner(sweep)


def _queries(client, url: str, rows: int) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    body = response.content.decode()
    if url.startswith("/api/"):
        assert response.json()["count"] == rows
    else:
        assert body.count("/training/jobs/") >= rows or body.count("/training/sweeps/") >= rows
    return len(captured)


@pytest.mark.parametrize(
    "url, make",
    [
        ("/api/v1/training/jobs/", _jobs),
        ("/training/", _jobs),
        ("/api/v1/training/sweeps/", _sweeps),
        ("/training/sweeps/", _sweeps),
    ],
)
def test_list_queries_do_not_grow_with_rows(owner, team, url, make):
    client = api_client_for(owner) if url.startswith("/api/") else page_client_for(owner)
    make(owner, team, 5)
    client.get(url)  # warm the per-user caches (roles, content types) on both sides alike
    at_5 = _queries(client, url, 5)
    make(owner, team, 45)
    at_50 = _queries(client, url, 50)
    assert at_50 == at_5, f"{url}: {at_5} queries at 5 rows, {at_50} at 50"
