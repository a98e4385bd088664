"""Team on launch (API and browser): membership checked (400 otherwise); job, run, experiment and
the registered model version are then shared with the team as viewers."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.services import team_create
from apps.experiments.models import Experiment
from apps.training import runner
from apps.training.models import Sweep, TrainingJob
from tests.conftest import api_client_for
from tests.training.conftest import TINY
from tests.training.test_sweeps import FIXED

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/training/jobs/"
SWEEPS = "/api/v1/training/sweeps/"


@pytest.fixture
def other_team(db, stranger):
    return team_create(name="Fraud", slug="fraud", members=[stranger])


@pytest.mark.parametrize("value", ["fraud", "Fraud", "other-id", "nope", 999999, True, ["risk"]])
def test_team_must_be_one_of_yours(api_owner, team, other_team, value):
    value = other_team.pk if value == "other-id" else value
    response = api_owner.post(JOBS, {"template": "tabular-mlp-classifier", "params": TINY, "team": value},
                              format="json")  # fmt: skip
    assert response.status_code == 400, response.content
    assert "team" in response.json(), response.json()
    assert not TrainingJob.objects.exists() and not Experiment.objects.exists()


def test_sweep_team_must_be_one_of_yours(api_owner, other_team):
    payload = {"name": "s", "template": "tabular-mlp-classifier", "method": "grid", "team": "fraud",
               "space": {"lr": {"values": [0.01]}}, "params": FIXED}  # fmt: skip
    response = api_owner.post(SWEEPS, payload, format="json")
    assert response.status_code == 400 and "team" in response.json()
    assert not Sweep.objects.exists() and not TrainingJob.objects.exists()


def test_member_launch_shares_job_run_and_model_version(api_owner, owner, collaborator, stranger, team):
    response = api_owner.post(
        JOBS, {"template": "tabular-mlp-classifier", "params": TINY, "team": "risk", "model_name": "team-model"},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["team"] == "risk"
    job = TrainingJob.objects.get(pk=body["id"])
    assert job.team == team and job.experiment.name == "training-risk-tabular-mlp-classifier"
    mate, outsider = api_client_for(collaborator), api_client_for(stranger)
    assert mate.get(f"{JOBS}{job.pk}/").status_code == 200
    assert mate.get(f"/api/v1/runs/{job.run_id}/").status_code == 200
    assert mate.get(f"/api/v1/experiments/{job.experiment_id}/").status_code == 200
    assert mate.post(f"{JOBS}{job.pk}/cancel").status_code == 403  # viewers, not editors
    assert (
        mate.patch(f"/api/v1/experiments/{job.experiment_id}/", {"description": "x"}, format="json").status_code == 403
    )
    assert outsider.get(f"{JOBS}{job.pk}/").status_code == 404
    assert outsider.get(f"/api/v1/runs/{job.run_id}/").status_code == 404

    assert runner.execute(job.pk) == "succeeded"
    job.refresh_from_db()
    version = job.model_version
    url = f"/api/v1/models/{version.model.name}/versions/{version.version}/"
    assert mate.get(url).status_code == 200
    assert outsider.get(url).status_code == 404


def test_existing_model_and_chosen_experiment_are_shared_too(api_owner, owner, collaborator, team, launch):
    from apps.experiments.services import experiment_create

    first = launch(model_name="shared-later")
    runner.execute(first.pk)  # the model now exists, not shared with anyone
    mine = experiment_create(name="my-exp", actor=owner)
    mate = api_client_for(collaborator)
    assert mate.get("/api/v1/models/shared-later/").status_code == 404
    body = api_owner.post(JOBS, {"template": "tabular-mlp-classifier", "params": TINY, "team": "risk",
                                 "model_name": "shared-later", "experiment": mine.pk}, format="json").json()  # fmt: skip
    assert mate.get(f"/api/v1/experiments/{mine.pk}/").status_code == 200
    runner.execute(body["id"])
    assert mate.get("/api/v1/models/shared-later/versions/2/").status_code == 200


def test_team_editor_share_is_not_downgraded(api_owner, owner, collaborator, team):
    from apps.core.permissions import can
    from apps.core.sharing import share_object
    from apps.experiments.services import experiment_create

    exp = experiment_create(name="team-exp", actor=owner, team="risk")  # the team views it...
    share_object(obj=exp, actor=owner, role="editor", team=team)  # ...and the owner made it editor
    response = api_owner.post(JOBS, {"template": "tabular-mlp-classifier", "params": TINY, "team": "risk",
                                     "experiment": exp.pk}, format="json")  # fmt: skip
    assert response.status_code == 201
    assert can(collaborator, "change", exp)


def test_sweep_with_team_shares_sweep_and_trials(api_owner, collaborator, team):
    payload = {"name": "team-sweep", "template": "tabular-mlp-classifier", "method": "grid", "team": "risk",
               "space": {"lr": {"values": [0.01, 0.02, 0.03]}}, "parallelism": 2, "params": FIXED}  # fmt: skip
    body = api_owner.post(SWEEPS, payload, format="json").json()
    assert body["team"] == "risk"
    mate = api_client_for(collaborator)
    assert mate.get(f"{SWEEPS}{body['id']}/").status_code == 200
    jobs = mate.get(f"{JOBS}?sweep={body['id']}").json()
    assert jobs["count"] == 2 and all(j["team"] == "risk" for j in jobs["results"])


def test_browser_launch_form_offers_only_my_teams(owner, collaborator, team, other_team):
    page = Client()
    page.force_login(owner)
    url = "/training/templates/tabular-mlp-classifier/launch/"
    body = page.get(url).content.decode()
    assert "Risk Analytics" in body and "Fraud" not in body
    form = {"dataset": "wine", "resource_class": "cpu", "priority": 5, "max_runtime_s": 600, "seed": 0,
            "p_epochs": 2, "team": other_team.pk}  # fmt: skip
    assert page.post(url, form).status_code == 200 and not TrainingJob.objects.exists()
    response = page.post(url, {**form, "team": team.pk})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = TrainingJob.objects.get()
    assert job.team == team
    assert api_client_for(collaborator).get(f"{JOBS}{job.pk}/").status_code == 200


def test_browser_sweep_form_takes_a_team(owner, collaborator, team, other_team):
    page = Client()
    page.force_login(owner)
    url = "/training/sweeps/new/tabular-mlp-classifier/"
    form = {"name": "web", "method": "grid", "space": '{"lr": {"values": [0.01]}}', "params": '{"epochs": 2}',
            "max_trials": 1, "parallelism": 1, "seed": 0, "team": other_team.pk}  # fmt: skip
    assert page.post(url, form).status_code == 200 and not Sweep.objects.exists()
    assert page.post(url, {**form, "team": team.pk}).status_code == 302
    sweep = Sweep.objects.get()
    assert sweep.team == team and sweep.jobs.get().team == team
    assert api_client_for(collaborator).get(f"{SWEEPS}{sweep.pk}/").status_code == 200
