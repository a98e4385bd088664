"""REST API: templates, launch validation, routing, residency, cancel, permissions."""

from __future__ import annotations

import pytest

from apps.training.models import TrainingJob
from apps.training.services import job_launch
from tests.conftest import api_client_for
from tests.permissions import StrangerDeniedMixin
from tests.training.conftest import TINY

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/training/jobs/"


def test_templates_list_schema(api_owner):
    body = api_owner.get("/api/v1/training/templates/").json()
    names = {t["name"] for t in body}
    assert {"tabular-mlp-classifier", "digits-cnn", "mlp-regressor"} <= names
    lr = next(p for t in body if t["name"] == "digits-cnn" for p in t["params"] if p["name"] == "lr")
    assert lr["type"] == "float" and lr["min"] > 0 and lr["help"]


def test_launch_creates_queued_job_and_run(api_owner, owner, django_capture_on_commit_callbacks, sent_tasks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_owner.post(JOBS, {"template": "digits-cnn", "params": {"epochs": 1}, "seed": 3}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "queued" and body["queue"] == "cpu" and body["params"]["epochs"] == 1
    assert body["data"] == {"dataset": "digits"} and body["run"] and body["seed"] == 3
    job = TrainingJob.objects.get(pk=body["id"])
    options = {"queue": "cpu", "priority": 4, "task_id": job.celery_task_id}  # priority 5 of 9 is Celery's 4
    assert sent_tasks["tasks"] == [("training.run_job", [job.pk], options)]
    assert job.run.status == "queued" and job.run.params["lr"] == str(job.params["lr"])


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"template": "nope"}, "template"),
        ({"template": "digits-cnn", "params": {"lr": 5}}, "params.lr"),
        ({"template": "digits-cnn", "params": {"lr": "fast"}}, "params.lr"),
        ({"template": "digits-cnn", "params": {"colour": 1}}, "params.colour"),
        ({"template": "digits-cnn", "params": [1, 2]}, "params"),
        ({"template": "digits-cnn", "resource_class": "tpu"}, "resource_class"),
        ({"template": "digits-cnn", "region": "Not A Region!"}, "region"),
        ({"template": "digits-cnn", "priority": 11}, "priority"),
        ({"template": "digits-cnn", "max_runtime_s": 0}, "max_runtime_s"),
        ({"template": "digits-cnn", "seed": "abc"}, "seed"),
        ({"template": "digits-cnn", "data": {"dataset": "imagenet"}}, "data"),
        ({"template": "digits-cnn", "data": {"training_set": 999999, "label": "y"}}, "data"),
        ({"template": "digits-cnn", "model_name": "Bad Name"}, "model_name"),
        ({"template": "digits-cnn", "experiment": 999999}, "experiment"),
        ({"template": "digits-cnn", "surprise": 1}, "surprise"),
        ({}, "template"),
    ],
)
def test_invalid_launch_gets_field_errors(api_owner, payload, field):
    response = api_owner.post(JOBS, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not TrainingJob.objects.exists()


def test_non_object_body_is_400(api_owner):
    assert api_owner.post(JOBS, [1, 2], format="json").status_code == 400


def test_viewer_role_cannot_launch(auditor):
    response = api_client_for(auditor).post(JOBS, {"template": "digits-cnn"}, format="json")
    assert response.status_code == 403


def test_gpu_job_waits_with_warning_when_no_gpu_worker(api_owner):
    body = api_owner.post(JOBS, {"template": "digits-cnn", "resource_class": "gpu"}, format="json").json()
    assert body["queue"] == "gpu" and body["device"] == "cuda" and body["state"] == "queued"
    assert "waits" in body["warning"]


def test_gpu_job_with_cpu_fallback_goes_to_cpu_and_says_so(api_owner):
    payload = {"template": "digits-cnn", "resource_class": "gpu", "allow_cpu_fallback": True}
    body = api_owner.post(JOBS, payload, format="json").json()
    assert body["queue"] == "cpu" and body["device"] == "cpu" and "CPU fallback" in body["warning"]


def test_gpu_job_with_gpu_worker_has_no_warning(api_owner, monkeypatch):
    monkeypatch.setattr("apps.core.workers.workers_by_queue", lambda: {"gpu": 1})
    body = api_owner.post(JOBS, {"template": "digits-cnn", "resource_class": "gpu"}, format="json").json()
    assert body["queue"] == "gpu" and body["warning"] == ""


def test_region_goes_to_region_queue(api_owner):
    body = api_owner.post(JOBS, {"template": "digits-cnn", "region": "uae-north"}, format="json").json()
    assert body["queue"] == "cpu.uae-north" and body["region"] == "uae-north"


def _training_set(owner, region):
    from apps.core.permissions import grant_owner
    from apps.features.models import TrainingSet

    ts = TrainingSet.objects.create(
        name="churn-set", features=["v:a"], region=region, path="x.parquet", columns=["cust", "a", "b", "label"],
        entity_digest="0" * 64, digest="0" * 64, lineage={}, owner=owner,
    )  # fmt: skip
    grant_owner(ts)
    return ts


def test_residency_pins_queue_and_refuses_other_region(api_owner, owner):
    ts = _training_set(owner, "uae-north")
    data = {"training_set": ts.pk, "label": "label", "features": ["a", "b"]}
    body = api_owner.post(JOBS, {"template": "tabular-mlp-classifier", "data": data}, format="json").json()
    assert body["queue"] == "cpu.uae-north" and body["data"]["features"] == ["a", "b"]
    refused = api_owner.post(
        JOBS, {"template": "tabular-mlp-classifier", "data": data, "region": "eu-west"}, format="json"
    )
    assert refused.status_code == 400 and "pinned to region 'uae-north'" in refused.json()["region"][0]


def test_stranger_cannot_use_anothers_training_set(api_stranger, owner):
    ts = _training_set(owner, "default")
    data = {"training_set": ts.pk, "label": "label"}
    response = api_stranger.post(JOBS, {"template": "tabular-mlp-classifier", "data": data}, format="json")
    assert response.status_code == 400 and "data" in response.json()


def test_training_set_label_must_be_a_column(api_owner, owner):
    ts = _training_set(owner, "default")
    response = api_owner.post(
        JOBS, {"template": "tabular-mlp-classifier", "data": {"training_set": ts.pk, "label": "zzz"}}, format="json"
    )
    assert response.status_code == 400 and "label" in response.json()["data"][0]


def test_cancel_queued_job(api_owner, owner, django_capture_on_commit_callbacks, monkeypatch, sent_tasks):
    monkeypatch.setattr("apps.training.services.jobs.cancel_flag_set", lambda job: None)
    job = job_launch(actor=owner, template="tabular-mlp-classifier", params=TINY)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_owner.post(f"{JOBS}{job.pk}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert sent_tasks["revoked"] == [job.celery_task_id]
    job.run.refresh_from_db()
    assert job.run.status == "killed"
    assert api_owner.post(f"{JOBS}{job.pk}/cancel").status_code == 409


def test_cancel_running_job_sets_flag(
    api_owner, owner, monkeypatch, django_capture_on_commit_callbacks, live_delivery
):  # fmt: skip
    flags = []
    monkeypatch.setattr("apps.training.services.jobs.cancel_flag_set", flags.append)
    job = live_delivery(job_launch(actor=owner, template="digits-cnn"))
    TrainingJob.objects.filter(pk=job.pk).update(state="running")
    with django_capture_on_commit_callbacks(execute=True):
        body = api_owner.post(f"{JOBS}{job.pk}/cancel").json()
    assert body["state"] == "running" and body["cancel_requested"] is True
    assert [f.pk for f in flags] == [job.pk]


def test_list_filters_and_validation(api_owner, owner):
    job_launch(actor=owner, template="digits-cnn")
    assert api_owner.get(JOBS + "?state=queued").json()["count"] == 1
    assert api_owner.get(JOBS + "?state=succeeded").json()["count"] == 0
    assert api_owner.get(JOBS + "?state=bogus").status_code == 400
    assert api_owner.get(JOBS + "?sweep=x").status_code == 400


def test_collaborator_sees_team_job_but_cannot_cancel(owner, collaborator, team):
    job = job_launch(actor=owner, template="digits-cnn", team=team.slug)
    client = api_client_for(collaborator)
    assert client.get(f"{JOBS}{job.pk}/").status_code == 200
    assert client.post(f"{JOBS}{job.pk}/cancel").status_code == 403


class TestJobStranger(StrangerDeniedMixin):
    list_url = JOBS

    def make_object(self, owner):
        return job_launch(actor=owner, template="digits-cnn")

    def detail_url(self, obj):
        return f"{JOBS}{obj.pk}/"

    def test_stranger_cannot_cancel(self, stranger, target):
        assert api_client_for(stranger).post(f"{JOBS}{target.pk}/cancel").status_code == 404
        target.refresh_from_db()
        assert target.state == "queued" and not target.cancel_requested


def test_openapi_schema_documents_training_endpoints(api_owner):
    response = api_owner.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    body = response.content.decode()
    for path in ("/api/v1/training/templates/", "/api/v1/training/jobs/", "/api/v1/training/jobs/{id}/cancel",
                 "/api/v1/training/sweeps/"):  # fmt: skip
        assert path in body, path
    assert "JobLaunch" in body and "allow_cpu_fallback" in body


def test_username_with_underscore_and_dot_launches_with_default_names(db):
    from apps.accounts import roles
    from tests.conftest import make_user

    user = make_user("jane_doe.x", roles.ML_ENGINEERS)
    response = api_client_for(user).post(JOBS, {"template": "tabular-mlp-classifier", "params": TINY}, format="json")
    assert response.status_code == 201, response.content
    job = TrainingJob.objects.get(pk=response.json()["id"])
    assert job.model_name == "jane-doe-x-tabular-mlp-classifier"
    assert job.experiment.name == "training-jane-doe-x-tabular-mlp-classifier"


def test_job_sharing_api_shares_and_unshares(owner, collaborator, stranger):
    job = job_launch(actor=owner, template="tabular-mlp-classifier", params=TINY)
    url = f"{JOBS}{job.pk}/sharing"
    mine, mate = api_client_for(owner), api_client_for(collaborator)
    assert mine.post(url, {"user": "collaborator", "role": "viewer"}, format="json").status_code == 204
    assert mine.get(url).json() == [{"user": "collaborator", "role": "viewer", "grants": []}]
    assert mate.get(f"{JOBS}{job.pk}/").status_code == 200
    assert (
        mate.post(url, {"user": "stranger", "role": "viewer"}, format="json").status_code == 403
    )  # viewers don't share
    assert api_client_for(stranger).get(url).status_code == 404
    assert mine.delete(url, {"user": "collaborator"}, format="json").status_code == 204
    assert mate.get(f"{JOBS}{job.pk}/").status_code == 404
