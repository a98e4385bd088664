"""Sweeps: validation, grid/random/TPE trial generation, parallelism, best trial, pruning, pages."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.training import runner, search, services
from apps.training.models import Sweep, TrainingJob
from tests.conftest import api_client_for
from tests.permissions import StrangerDeniedMixin

pytestmark = pytest.mark.django_db
SWEEPS = "/api/v1/training/sweeps/"
FIXED = {"epochs": 2, "batch_size": 256, "layers": 1, "patience": 0}


def make(owner, **kw):
    kw.setdefault("name", "s1")
    kw.setdefault("template", "tabular-mlp-classifier")
    kw.setdefault("method", "grid")
    kw.setdefault("space", {"hidden_units": {"values": [4, 8]}, "lr": {"values": [0.01, 0.05]}})
    kw.setdefault("params", FIXED)
    kw.setdefault("parallelism", 2)
    return services.sweep_create(actor=owner, **kw)


def test_grid_sweep_respects_parallelism_and_finds_best(owner):
    sweep = make(owner)
    assert sweep.max_trials == 4 and sweep.jobs.count() == 2  # parallelism limit
    seen = set()
    while True:
        active = list(sweep.jobs.filter(state="queued"))
        if not active:
            break
        for job in active:
            seen.add((job.params["hidden_units"], job.params["lr"]))
            runner.execute(job.pk)
            services.sweep_advance(sweep_id=sweep.pk)  # what the on-commit task does
    sweep.refresh_from_db()
    assert seen == {(4, 0.01), (4, 0.05), (8, 0.01), (8, 0.05)}
    assert sweep.state == "succeeded" and sweep.best_job is not None
    values = [j.metrics["val_loss"] for j in sweep.jobs.all()]
    assert sweep.best_job.metrics["val_loss"] == min(values)
    page = Client()
    page.force_login(owner)
    body = page.get(f"/training/sweeps/{sweep.pk}/").content.decode()
    assert "★ best" in body and "parcoords" in body and '"trials": [{' in body


def test_random_sweep_is_reproducible(owner):
    space = {"lr": {"min": 0.001, "max": 0.1, "log": True}, "hidden_units": {"min": 4, "max": 64}}
    a = make(owner, name="a", method="random", space=space, max_trials=3, parallelism=3, seed=4)
    b = make(owner, name="b", method="random", space=space, max_trials=3, parallelism=3, seed=4)
    pa = [j.params for j in a.jobs.order_by("trial_number")]
    assert pa == [j.params for j in b.jobs.order_by("trial_number")]
    assert all(0.001 <= p["lr"] <= 0.1 and isinstance(p["hidden_units"], int) for p in pa)
    assert len({p["lr"] for p in pa}) == 3


def test_tpe_sweep_suggests_and_median_pruner_prunes(owner):
    space = {"lr": {"min": 0.0001, "max": 0.1, "log": True}}
    sweep = make(owner, method="tpe", space=space, max_trials=6, parallelism=1, params={**FIXED, "epochs": 3})
    first = sweep.jobs.get()
    runner.execute(first.pk)
    services.sweep_advance(sweep_id=sweep.pk)
    second = sweep.jobs.get(trial_number=1)
    runner.execute(second.pk)
    # A third trial that is far worse than both finished ones at every epoch is pruned.
    services.sweep_advance(sweep_id=sweep.pk)
    third = sweep.jobs.get(trial_number=2)
    prune = search.pruner_for(third)
    assert prune(1, {"val_loss": 1e6}) is False  # warm-up step
    assert prune(2, {"val_loss": 1e6}) is True
    assert search.pruner_for(first) is not None and search.next_params(sweep, 3)["lr"] > 0


@pytest.mark.parametrize(
    "change, field",
    [
        ({"method": "bayes"}, "method"),
        ({"space": {}}, "space"),
        ({"space": {"nope": {"values": [1]}}}, "space"),
        ({"space": {"lr": {"values": [7]}}}, "space"),
        ({"space": {"lr": {"min": 0.1, "max": 0.01}}}, "space"),
        ({"space": {"lr": {"min": 0.01, "max": 0.1}}}, "space"),  # grid needs values
        ({"template": "zzz"}, "template"),
        ({"metric": "val_r2"}, "metric"),
        ({"parallelism": 0}, "parallelism"),
        ({"max_trials": "many"}, "max_trials"),
        ({"params": {"epochs": -1}}, "params.epochs"),
    ],
)
def test_invalid_sweeps_refused(owner, change, field):
    payload = {"name": "bad", "template": "tabular-mlp-classifier", "method": "grid",
               "space": {"lr": {"values": [0.01]}}, **change}  # fmt: skip
    response = api_client_for(owner).post(SWEEPS, payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Sweep.objects.exists() and not TrainingJob.objects.exists()


def test_api_create_and_child_jobs_listed(owner):
    client = api_client_for(owner)
    payload = {"name": "api", "template": "tabular-mlp-classifier", "method": "grid",
               "space": {"lr": {"values": [0.01, 0.02, 0.03]}}, "parallelism": 2, "params": FIXED}  # fmt: skip
    body = client.post(SWEEPS, payload, format="json").json()
    assert body["max_trials"] == 3 and body["state"] == "running"
    jobs = client.get(f"/api/v1/training/jobs/?sweep={body['id']}").json()
    assert jobs["count"] == 2 and {j["trial_number"] for j in jobs["results"]} == {0, 1}


class TestSweepStranger(StrangerDeniedMixin):
    list_url = SWEEPS

    def make_object(self, owner):
        return make(owner)

    def detail_url(self, obj):
        return f"{SWEEPS}{obj.pk}/"

    def test_stranger_cannot_see_page_or_children(self, stranger, target):
        client = Client()
        client.force_login(stranger)
        assert client.get(f"/training/sweeps/{target.pk}/").status_code == 404
        assert api_client_for(stranger).get(f"/api/v1/training/jobs/?sweep={target.pk}").json()["count"] == 0


def test_sweep_sharing_api_shares_and_unshares(owner, collaborator, stranger):
    sweep = make(owner)
    url = f"{SWEEPS}{sweep.pk}/sharing"
    mine, mate = api_client_for(owner), api_client_for(collaborator)
    assert mine.post(url, {"user": "collaborator", "role": "editor"}, format="json").status_code == 204
    assert mine.get(url).json() == [{"user": "collaborator", "role": "editor", "grants": []}]
    assert mate.get(f"{SWEEPS}{sweep.pk}/").status_code == 200
    assert api_client_for(stranger).post(url, {"user": "stranger", "role": "viewer"}, format="json").status_code == 404
    assert mine.delete(url, {"user": "collaborator"}, format="json").status_code == 204
    assert mate.get(f"{SWEEPS}{sweep.pk}/").status_code == 404
