"""Who may do what to experiments and runs: services check their actor, teams are viewers, and
`experiments/{id}/sharing` / `runs/{id}/sharing` share through the one share service."""

from __future__ import annotations

import io

import pytest

from apps.core import vault
from apps.core.errors import Forbidden, IntegrityFailure, NotFound
from apps.core.permissions import can, share
from apps.experiments import services
from apps.experiments.models import MetricPoint, Run, RunMetricSummary
from tests.conftest import api_client_for, make_user
from tests.experiments.factories import experiment, points, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def owned(owner):
    exp = experiment(owner)
    return exp, run(exp, owner)


WRITES = {
    "run_update": lambda r, actor: services.run_update(run=r, actor=actor, name="renamed"),
    "run_set_status": lambda r, actor: services.run_set_status(run=r, actor=actor, status="finished"),
    "run_report_progress": lambda r, actor: services.run_report_progress(run=r, actor=actor, progress=0.5),
    "run_log_batch": lambda r, actor: services.run_log_batch(run=r, actor=actor, metrics=points("loss", 2)),
    "run_log_system_metrics": lambda r, actor: services.run_log_system_metrics(run=r, actor=actor, cpu_percent=1.0),
    "run_append_log": lambda r, actor: services.run_append_log(run=r, actor=actor, text="hi\n"),
    "run_artifact_add": lambda r, actor: services.run_artifact_add(run=r, actor=actor, path="a.bin", size=1),
    "run_truncate_metrics": lambda r, actor: services.run_truncate_metrics(run=r, actor=actor, after_step=0),
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_run_services_refuse_viewers_and_strangers(owned, collaborator, stranger, name):
    exp, r = owned
    share(exp, role="viewer", user=collaborator)
    before = (Run.objects.get(pk=r.pk).updated_at, MetricPoint.objects.count(), r.artifacts.count())
    with pytest.raises(Forbidden):
        WRITES[name](Run.objects.get(pk=r.pk), collaborator)
    with pytest.raises(NotFound):
        WRITES[name](Run.objects.get(pk=r.pk), stranger)
    assert (Run.objects.get(pk=r.pk).updated_at, MetricPoint.objects.count(), r.artifacts.count()) == before


def test_team_experiment_is_shared_with_the_team_as_viewer_not_editor(api_owner, collaborator, team):
    created = api_owner.post("/api/v1/experiments/", {"name": "teamwork", "team": "risk"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["team"] == "risk"
    mate = api_client_for(collaborator)
    assert mate.get(f"/api/v1/experiments/{body['id']}/").status_code == 200
    assert mate.patch(f"/api/v1/experiments/{body['id']}/", {"description": "x"}, format="json").status_code == 403
    assert mate.post("/api/v1/runs/", {"experiment": body["id"], "name": "mine"}, format="json").status_code == 403


def test_team_experiment_needs_membership_on_pages_too(owner, team, stranger):
    from apps.experiments.models import Experiment
    from tests.conftest import page_client_for

    response = page_client_for(owner).post("/experiments/", {"name": "vision", "team": team.pk})
    assert response.status_code == 302
    analyst = make_user("analyst")
    team.group.user_set.add(analyst)
    exp = Experiment.objects.get(name="vision")
    assert can(analyst, "view", exp) and not can(analyst, "change", exp)
    with pytest.raises(Exception) as info:
        services.experiment_create(actor=stranger, name="sneaky", team="risk")
    assert "not a member" in str(info.value)


def test_experiment_sharing_api_lists_shares_and_unshares(owned, api_owner, collaborator, team):
    exp, _ = owned
    url = f"/api/v1/experiments/{exp.pk}/sharing"
    assert api_owner.get(url).json() == []
    assert api_owner.post(url, {"user": "collaborator", "role": "editor"}, format="json").status_code == 204
    assert api_owner.post(url, {"team": "risk", "role": "viewer"}, format="json").status_code == 204
    listing = api_owner.get(url).json()
    assert {"user": "collaborator", "role": "editor", "grants": []} in listing
    assert {"team": "risk", "role": "viewer", "grants": []} in listing
    assert can(collaborator, "change", exp)
    assert api_owner.delete(url, {"user": "collaborator"}, format="json").status_code == 204
    assert not can(collaborator, "view", exp) or api_owner.get(url).json() == [
        {"team": "risk", "role": "viewer", "grants": []}
    ]


def test_run_sharing_shares_the_runs_experiment(owned, api_owner, collaborator, stranger):
    exp, r = owned
    sibling = run(exp, exp.owner, name="sibling")
    url = f"/api/v1/runs/{r.pk}/sharing"
    assert api_client_for(stranger).get(url).status_code == 404
    assert api_owner.post(url, {"user": "collaborator", "role": "viewer"}, format="json").status_code == 204
    mate = api_client_for(collaborator)
    assert mate.get(f"/api/v1/experiments/{exp.pk}/").status_code == 200
    assert mate.get(f"/api/v1/runs/{sibling.pk}/").status_code == 200  # access follows the experiment
    assert mate.get(url).status_code == 403  # viewers do not manage sharing
    assert api_owner.get(url).json() == api_owner.get(f"/api/v1/experiments/{exp.pk}/sharing").json()


def test_run_patch_changes_nothing_when_the_status_move_is_refused(owned, api_owner):
    _, r = owned
    services.run_set_status(run=r, actor=r.owner, status="finished")
    response = api_owner.patch(f"/api/v1/runs/{r.pk}/", {"name": "renamed", "status": "running"}, format="json")
    assert response.status_code == 409
    assert Run.objects.get(pk=r.pk).name == r.name


def test_run_log_tail_can_be_read_back(owned, api_owner, stranger):
    _, r = owned
    services.run_append_log(run=r, actor=r.owner, text="epoch 1\n")
    assert api_owner.get(f"/api/v1/runs/{r.pk}/log").json() == {"run": r.pk, "text": "epoch 1\n"}
    assert api_client_for(stranger).get(f"/api/v1/runs/{r.pk}/log").status_code == 404


def test_run_truncate_metrics_deletes_later_points_and_rebuilds_summaries(owned, owner):
    _, r = owned
    services.run_log_batch(run=r, actor=owner, metrics=points("loss", 10, fn=lambda s: float(s)))
    services.run_log_batch(run=r, actor=owner, metrics=[{"key": "late", "step": 8, "value": 1.0}])
    assert services.run_truncate_metrics(run=r, actor=owner, after_step=4) == 6
    assert sorted(MetricPoint.objects.filter(run=r).values_list("step", flat=True)) == [0, 1, 2, 3, 4]
    loss = RunMetricSummary.objects.get(run=r, key="loss")
    assert (loss.count, loss.min, loss.max, loss.last, loss.last_step) == (5, 0.0, 4.0, 4.0, 4)
    assert not RunMetricSummary.objects.filter(run=r, key="late").exists()
    assert services.run_truncate_metrics(run=r, actor=owner, after_step=4) == 0


def test_tampered_artifact_raises_the_domain_integrity_error(owned, owner):
    _, r = owned
    artifact = services.run_artifact_upload(run=r, actor=owner, src=io.BytesIO(b"w" * 500), size=500, path="m.bin")
    stored = vault.storage().path(artifact.blob.storage_key)
    with open(stored, "r+b") as fh:
        fh.seek(-10, 2)
        fh.write(b"\x00" * 10)
    with pytest.raises(IntegrityFailure):
        services.run_artifact_open(artifact=artifact, actor=owner)
