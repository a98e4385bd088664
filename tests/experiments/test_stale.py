"""Runs whose client went silent are flagged stale by a scheduled task, shown apart and never
counted as training; a run that logs again is live again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.experiments.dashboard import cards
from apps.experiments.models import Run
from apps.experiments.services import (
    run_append_log,
    run_log_batch,
    run_report_progress,
    run_set_status,
    runs_mark_stale,
)
from apps.experiments.tasks import mark_stale_runs
from tests.conftest import api_client_for, page_client_for
from tests.experiments.factories import experiment, points, run

pytestmark = pytest.mark.django_db


def later(seconds: int):
    return timezone.now() + timedelta(seconds=seconds)


@pytest.fixture
def live_run(owner):
    r = run(experiment(owner), owner, name="adamw")
    run_log_batch(run=r, actor=owner, metrics=points("loss", 5))
    return r


def test_silent_running_run_is_flagged_stale_and_not_counted_as_training(owner, live_run, stale_after):
    assert cards(owner)[0]["detail"] == "1 run training now"
    assert runs_mark_stale(now=later(stale_after - 60)) == 0  # not silent long enough
    assert runs_mark_stale(now=later(stale_after + 1)) == 1
    live_run.refresh_from_db()
    assert live_run.status == Run.Status.RUNNING and live_run.stale
    assert cards(owner)[0]["detail"] == "0 runs training now"
    body = api_client_for(owner).get(f"/api/v1/runs/{live_run.pk}/").json()
    assert body["stale"] is True and body["status"] == "running"
    training = api_client_for(owner).get("/api/v1/runs/", {"status": "running", "stale": "false"}).json()
    assert training["count"] == 0
    listing = page_client_for(owner).get("/experiments/").content.decode()
    assert "1 stale" in listing
    page = page_client_for(owner).get(f"/runs/{live_run.pk}/").content.decode()
    assert "run-stale" in page and 'id="stale-note"' in page


def test_mark_stale_runs_task_flags_only_silent_running_runs(owner, live_run, stale_after, monkeypatch):
    exp = live_run.experiment
    done = run(exp, owner, name="done")
    run_set_status(run=done, actor=owner, status=Run.Status.FINISHED)
    queued = run(exp, owner, name="queued", status=Run.Status.QUEUED)
    future = later(stale_after + 5)
    monkeypatch.setattr("django.utils.timezone.now", lambda: future)
    assert mark_stale_runs() == {"stale": 1}
    assert set(Run.objects.filter(stale=True).values_list("name", flat=True)) == {"adamw"}
    assert mark_stale_runs() == {"stale": 0}  # flagged once
    assert not Run.objects.get(pk=done.pk).stale and not Run.objects.get(pk=queued.pk).stale


@pytest.mark.parametrize("sign_of_life", ["log_batch", "log_line", "progress", "status"])
def test_run_that_logs_again_is_no_longer_stale(owner, live_run, stale_after, sign_of_life):
    runs_mark_stale(now=later(stale_after + 1))
    live_run.refresh_from_db()
    assert live_run.stale
    if sign_of_life == "log_batch":
        run_log_batch(run=live_run, actor=owner, metrics=points("loss", 1, start=9))
    elif sign_of_life == "log_line":
        run_append_log(run=live_run, actor=owner, text="epoch 3\n")
    elif sign_of_life == "progress":
        run_report_progress(run=live_run, actor=owner, progress=0.7)
    else:
        run_set_status(run=live_run, actor=owner, status=Run.Status.FINISHED)
    assert not Run.objects.get(pk=live_run.pk).stale
    if sign_of_life != "status":
        assert cards(owner)[0]["detail"] == "1 run training now"


def test_runs_table_shows_stale_runs_apart(owner, live_run, stale_after):
    exp = live_run.experiment
    run(exp, owner, name="fresh")
    runs_mark_stale(now=later(stale_after + 1), runs=Run.objects.filter(pk=live_run.pk))
    client = page_client_for(owner)
    training = client.get(f"/experiments/{exp.pk}/", {"status": "running"}).content.decode()
    assert "fresh" in training and "adamw" not in training
    stale = client.get(f"/experiments/{exp.pk}/", {"status": "stale"}).content.decode()
    assert "adamw" in stale and "fresh</a>" not in stale and "run-stale" in stale
