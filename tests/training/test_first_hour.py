"""What a new user tripped over on the training pages (issue #13) and the job and sweep Sharing cards."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.errors import Conflict
from apps.core.models import AuditEntry
from apps.experiments.services import experiment_create
from apps.training import recovery
from apps.training.models import TrainingJob
from apps.training.services import job_launch, job_message, job_move_to_cpu, job_transition, sweep_create
from tests.conftest import api_client_for, page_client_for, share_as

pytestmark = pytest.mark.django_db
TINY = {"epochs": 1, "batch_size": 256, "hidden_units": 8, "layers": 1, "patience": 0}
GPU_FORM = {"p_epochs": "1", "p_channels": "4", "resource_class": "gpu", "priority": 5, "max_runtime_s": 60,
            "seed": 0, "dataset": "digits"}  # fmt: skip


def sweep_of(owner):
    return sweep_create(actor=owner, name="s1", template="tabular-mlp-classifier", method="grid",
                        space={"hidden_units": {"values": [4, 8]}},
                        params={k: v for k, v in TINY.items() if k != "hidden_units"}, parallelism=1)  # fmt: skip


# --- Sharing cards (#11) ---------------------------------------------------------------------------
def test_job_page_shows_a_sharing_card_to_its_owner_only(owner, viewer, sent_tasks):
    job = job_launch(actor=owner, template="tabular-mlp-classifier", params=TINY)
    share_as(job, viewer, "viewer")
    body = page_client_for(owner).get(f"/training/jobs/{job.pk}/").content.decode()
    assert 'id="sharing"' in body and f'action="/training/jobs/{job.pk}/share/"' in body and "viewer" in body
    assert 'id="sharing"' not in page_client_for(viewer).get(f"/training/jobs/{job.pk}/").content.decode()


def test_job_and_sweep_share_forms_share_and_unshare(owner, viewer, sent_tasks):
    job = job_launch(actor=owner, template="tabular-mlp-classifier", params=TINY)
    sweep = sweep_of(owner)
    client = page_client_for(owner)
    for path in (f"/training/jobs/{job.pk}/", f"/training/sweeps/{sweep.pk}/"):
        assert 'id="sharing"' in client.get(path).content.decode()
        response = client.post(f"{path}share/", {"user": "viewer", "role": "viewer"})
        assert response.status_code == 302 and response["Location"] == path
        assert page_client_for(viewer).get(path).status_code == 200
        bad = client.post(f"{path}share/", {"user": "nobody-here", "role": "viewer"})
        assert bad.status_code == 400 and "invalid-feedback" in bad.content.decode()
        assert client.post(f"{path}unshare/", {"user": "viewer"}).status_code == 302
        assert page_client_for(viewer).get(path).status_code == 404


# --- A GPU job without a GPU worker --------------------------------------------------------------
def test_gpu_wait_warning_is_shown_once_with_the_wait_and_a_run_on_cpu_button(owner, viewer, sent_tasks):
    client = page_client_for(owner)
    response = client.post("/training/templates/digits-cnn/launch/", GPU_FORM, follow=True)
    job = TrainingJob.objects.get()
    body = response.content.decode()
    assert job.queue == "gpu" and body.count("No GPU worker is online") == 1
    assert "Waiting for" in body and 'id="run-on-cpu"' in body
    share_as(job, viewer, "viewer")
    seen = page_client_for(viewer).get(f"/training/jobs/{job.pk}/").content.decode()
    assert "Waiting for" in seen and 'id="run-on-cpu"' not in seen  # only who may change the job


def test_run_on_cpu_moves_a_queued_gpu_job_to_the_cpu_queue(owner, sent_tasks, django_capture_on_commit_callbacks):
    job = job_launch(actor=owner, template="digits-cnn", params={"epochs": 1}, resource_class="gpu")
    old_task = job.celery_task_id
    with django_capture_on_commit_callbacks(execute=True):
        response = page_client_for(owner).post(f"/training/jobs/{job.pk}/run-on-cpu/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.queue, job.device, job.state, job.warning) == ("cpu", "cpu", "queued", "")
    assert job.celery_task_id != old_task and sent_tasks["revoked"] == [old_task]
    name, args, options = sent_tasks["tasks"][-1]
    assert (name, args, options["queue"], options["task_id"]) == (
        "training.run_job",
        [job.pk],
        "cpu",
        job.celery_task_id,
    )
    entry = AuditEntry.objects.get(additional_data__event="trainingjob.move_to_cpu")
    assert entry.actor == owner and entry.additional_data["to"] == "cpu"
    again = api_client_for(owner).post(f"/api/v1/training/jobs/{job.pk}/run-on-cpu")
    assert again.status_code == 409 and "CPU queue" in again.json()["detail"]


def test_run_on_cpu_refuses_a_job_that_left_the_queue(owner, sent_tasks):
    job = job_launch(actor=owner, template="digits-cnn", params={"epochs": 1}, resource_class="gpu")
    TrainingJob.objects.filter(pk=job.pk).update(state="running")
    with pytest.raises(Conflict):
        job_move_to_cpu(job=job, actor=owner)


def test_queue_timeout_fails_a_waiting_gpu_job_with_a_clear_reason(
    owner, sent_tasks, django_capture_on_commit_callbacks
):  # fmt: skip
    job = job_launch(actor=owner, template="digits-cnn", params={"epochs": 1}, resource_class="gpu", max_queue_s=1800)
    patient = job_launch(actor=owner, template="digits-cnn", params={"epochs": 1}, resource_class="gpu")
    TrainingJob.objects.filter(pk__in=[job.pk, patient.pk]).update(queued_at=timezone.now() - timedelta(minutes=31))
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.recover()["timed_out"] == 1
    job.refresh_from_db()
    assert job.state == "failed" and job.error.startswith("No GPU worker took this job within 30 min;")
    assert sent_tasks["revoked"] == [job.celery_task_id]
    assert TrainingJob.objects.get(pk=patient.pk).state == "queued"  # no max_queue_s: it waits
    bad = api_client_for(owner).post("/api/v1/training/jobs/", {"template": "digits-cnn", "max_queue_s": 5},
                                     format="json")  # fmt: skip
    assert bad.status_code == 400 and "max_queue_s" in bad.json()


# --- The launch form ---------------------------------------------------------------------------------
def test_launch_form_chooses_the_experiment_and_the_run_name(owner, stranger, sent_tasks):
    mine = experiment_create(actor=owner, name="churn-study")
    experiment_create(actor=stranger, name="not-yours")
    client = page_client_for(owner)
    form = client.get("/training/templates/digits-cnn/launch/").content.decode()
    assert f'<option value="{mine.pk}">churn-study</option>' in form and "not-yours" not in form
    data = {**GPU_FORM, "resource_class": "cpu", "experiment": mine.pk, "run_name": "first-try"}
    assert client.post("/training/templates/digits-cnn/launch/", data).status_code == 302
    job = TrainingJob.objects.select_related("run", "experiment").get()
    assert job.experiment == mine and job.run.name == "first-try"
    data = {**GPU_FORM, "resource_class": "cpu", "experiment_name": "fresh-exp"}
    assert client.post("/training/templates/digits-cnn/launch/", data).status_code == 302
    assert TrainingJob.objects.select_related("experiment").first().experiment.name == "fresh-exp"
    taken = client.post("/training/templates/digits-cnn/launch/", {**data, "experiment_name": "not-yours"})
    assert taken.status_code == 200 and "does not accept your runs" in taken.content.decode()


def test_launch_form_offers_only_datasets_that_fit_the_template(owner, sent_tasks):
    client = page_client_for(owner)
    cnn = client.get("/training/templates/digits-cnn/launch/").content.decode()
    assert '<option value="digits"' in cnn and '"wine"' not in cnn and '"diabetes"' not in cnn
    regressor = client.get("/training/templates/mlp-regressor/launch/").content.decode()
    assert '<option value="diabetes"' in regressor and '"wine"' not in regressor
    refused = api_client_for(owner).post(
        "/api/v1/training/jobs/", {"template": "digits-cnn", "data": {"dataset": "wine"}}, format="json"
    )
    assert refused.status_code == 400 and "does not fit" in refused.json()["data"][0]


# --- The job page while it runs ----------------------------------------------------------------------
def test_running_job_shows_its_attempt_from_one_and_its_real_start(owner, sent_tasks):
    job = job_launch(actor=owner, template="digits-cnn", params={"epochs": 1})
    queued = page_client_for(owner).get(f"/training/jobs/{job.pk}/").content.decode()
    assert "attempt 0" not in queued and "not started yet" in queued
    job_transition(job=job, to="running", worker="w1", attempts=1)
    message = job_message(job)
    assert message["attempts"] == 1 and message["started_at"] == job.started_at.isoformat()
    body = page_client_for(owner).get(f"/training/jobs/{job.pk}/").content.decode()
    from apps.core.format import when

    assert "attempt 1" in body and f"started {when(job.started_at)}" in body and "started —" not in body


# --- The sweep list ----------------------------------------------------------------------------------
def test_sweep_list_best_column_shows_the_metric_and_its_value(owner, sent_tasks):
    sweep = sweep_of(owner)
    best = sweep.jobs.first()
    TrainingJob.objects.filter(pk=best.pk).update(metrics={sweep.metric: 0.912345678})
    sweep.best_job = best
    sweep.save(update_fields=["best_job"])
    body = page_client_for(owner).get("/training/sweeps/").content.decode()
    assert f'href="/training/jobs/{best.pk}/"' in body and f"{sweep.metric} 0.9123</a>" in body
