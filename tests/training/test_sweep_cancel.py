"""Sweep cancel: children cancelled through the job cancel service, no new trials, 409, 404, audit."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.core.models import AuditEntry
from apps.training import services
from apps.training.models import Sweep, TrainingJob
from tests.conftest import api_client_for
from tests.training.test_sweeps import make

pytestmark = pytest.mark.django_db
SWEEPS = "/api/v1/training/sweeps/"


@pytest.fixture
def side_effects(monkeypatch, sent_tasks):
    """What the on-commit callbacks would send to the broker and Redis, recorded instead."""
    flags = []
    monkeypatch.setattr("apps.training.services.jobs.cancel_flag_set", lambda job: flags.append(job.pk))
    return {"revoked": sent_tasks["revoked"], "flags": flags, "tasks": sent_tasks["tasks"]}


def test_cancel_cancels_queued_and_stops_running_children(
    owner, side_effects, django_capture_on_commit_callbacks, live_delivery
):  # fmt: skip
    sweep = make(owner, max_trials=4, parallelism=3)
    first, second, third = sweep.jobs.order_by("trial_number")
    live_delivery(first)
    TrainingJob.objects.filter(pk=first.pk).update(state="running")
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(owner).post(f"{SWEEPS}{sweep.pk}/cancel")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "cancelled" and body["finished_at"]
    states = dict(sweep.jobs.values_list("pk", "state"))
    assert states == {first.pk: "running", second.pk: "cancelled", third.pk: "cancelled"}
    assert TrainingJob.objects.get(pk=first.pk).cancel_requested  # cooperative stop
    assert sorted(side_effects["revoked"]) == sorted([second.celery_task_id, third.celery_task_id])
    assert sorted(side_effects["flags"]) == sorted([first.pk, second.pk, third.pk])
    second.run.refresh_from_db()
    assert second.run.status == "killed"
    entry = AuditEntry.objects.get(additional_data__event="sweep.cancel", object_pk=str(sweep.pk))
    assert entry.actor == owner and sorted(entry.additional_data["cancelled"]) == sorted([second.pk, third.pk])
    assert entry.additional_data["stopping"] == [first.pk]
    # The sweep_advance sent for each cancelled child launches nothing.
    advanced = [args[0] for name, args, _ in side_effects["tasks"] if name == "training.sweep_advance"]
    assert advanced == [sweep.pk, sweep.pk]
    for sweep_id in advanced:
        assert services.sweep_advance(sweep_id=sweep_id) == 0
    assert sweep.jobs.count() == 3


def test_second_cancel_is_409_and_changes_nothing(owner, side_effects):
    sweep = make(owner)
    client = api_client_for(owner)
    assert client.post(f"{SWEEPS}{sweep.pk}/cancel").status_code == 200
    response = client.post(f"{SWEEPS}{sweep.pk}/cancel")
    assert response.status_code == 409
    assert "already cancelled" in response.json()["detail"]
    finished = Sweep.objects.get(pk=sweep.pk)
    Sweep.objects.filter(pk=sweep.pk).update(state="succeeded")
    assert client.post(f"{SWEEPS}{sweep.pk}/cancel").status_code == 409
    assert Sweep.objects.get(pk=sweep.pk).finished_at == finished.finished_at


def test_no_new_trials_after_cancel(owner, side_effects):
    sweep = make(owner, max_trials=4, parallelism=2)
    services.sweep_cancel(sweep=sweep, actor=owner)
    # Even if a child's end races the cancel, advancing never launches another trial.
    assert services.sweep_advance(sweep_id=sweep.pk) == 0
    assert sweep.jobs.count() == 2 and not sweep.jobs.filter(state__in=TrainingJob.ACTIVE).exists()
    sweep.refresh_from_db()
    assert sweep.state == "cancelled"


def test_stranger_gets_404_and_changes_nothing(owner, stranger, side_effects):
    sweep = make(owner)
    assert api_client_for(stranger).post(f"{SWEEPS}{sweep.pk}/cancel").status_code == 404
    assert api_client_for(stranger).post(f"{SWEEPS}999999/cancel").status_code == 404
    page = Client()
    page.force_login(stranger)
    assert page.post(f"/training/sweeps/{sweep.pk}/cancel/").status_code == 404
    sweep.refresh_from_db()
    assert sweep.state == "running" and sweep.jobs.filter(state="queued").count() == 2


def test_team_viewer_may_not_cancel(owner, collaborator, team, side_effects):
    sweep = make(owner, team="risk")
    client = api_client_for(collaborator)
    assert client.get(f"{SWEEPS}{sweep.pk}/").status_code == 200
    assert client.post(f"{SWEEPS}{sweep.pk}/cancel").status_code == 403
    assert Sweep.objects.get(pk=sweep.pk).state == "running"


def test_cancel_button_on_sweep_page(owner, side_effects):
    sweep = make(owner)
    page = Client()
    page.force_login(owner)
    body = page.get(f"/training/sweeps/{sweep.pk}/").content.decode()
    assert 'id="sweep-cancel"' in body and 'data-confirm="Cancel sweep' in body
    response = page.post(f"/training/sweeps/{sweep.pk}/cancel/", follow=True)
    assert response.status_code == 200 and "Sweep cancelled" in response.content.decode()
    assert 'id="sweep-cancel"' not in response.content.decode()
    assert Sweep.objects.get(pk=sweep.pk).state == "cancelled"
    again = page.post(f"/training/sweeps/{sweep.pk}/cancel/", follow=True).content.decode()
    assert "already cancelled" in again
