"""Browser pages: lists with query guards, the generated launch form, job page, queues, costs, sweeps."""

from __future__ import annotations

import pytest

from apps.training.models import TrainingJob
from apps.training.services import job_launch
from tests.conftest import page_client_for as browser
from tests.training.conftest import TINY

pytestmark = pytest.mark.django_db


def test_templates_page_lists_schema(owner):
    body = browser(owner).get("/training/templates/").content.decode()
    assert "Digits CNN" in body and "hidden_units" in body and "/training/templates/digits-cnn/launch/" in body


def test_launch_form_is_generated_from_schema(owner):
    body = browser(owner).get("/training/templates/mlp-regressor/launch/").content.decode()
    assert 'name="p_lr"' in body and 'name="p_scheduler"' in body and 'name="allow_cpu_fallback"' in body
    assert 'max="1.0"' in body or 'max="1"' in body


def test_launch_form_shows_field_errors(owner):
    response = browser(owner).post(
        "/training/templates/digits-cnn/launch/",
        {"p_lr": "7", "resource_class": "cpu", "priority": 5, "max_runtime_s": 60, "seed": 0, "dataset": "digits"},
    )
    assert response.status_code == 200 and not TrainingJob.objects.exists()
    assert b"is-invalid" in response.content or b"invalid-feedback" in response.content


def test_launch_form_launches(owner):
    data = {"p_epochs": "1", "p_channels": "4", "resource_class": "gpu", "priority": 5, "max_runtime_s": 60,
            "seed": 0, "dataset": "digits", "model_name": "my-digits"}  # fmt: skip
    client = browser(owner)
    response = client.post("/training/templates/digits-cnn/launch/", data)
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/training/jobs/{job.pk}/"
    assert job.params["epochs"] == 1 and job.params["channels"] == 4 and job.model_name == "my-digits"
    page = client.get(response["Location"]).content.decode()
    assert "waits in the queue" in page and 'id="job-progress"' in page and "js/training-job-live.js" in page


def test_launch_form_offers_only_readable_training_sets(owner, stranger):
    from tests.training.test_api import _training_set

    ts = _training_set(owner, "uae-north")
    client = browser(owner)
    body = client.get("/training/templates/tabular-mlp-classifier/launch/").content.decode()
    assert f'<option value="{ts.pk}">churn-set (#{ts.pk}, 0 rows, region uae-north)</option>' in body
    assert '"cust", "a", "b", "label"' in body and 'list="training-set-columns"' in body  # label suggestions
    preselected = client.get(f"/training/templates/tabular-mlp-classifier/launch/?training_set={ts.pk}")
    assert f'<option value="{ts.pk}" selected>' in preselected.content.decode()
    assert (
        "churn-set" not in browser(stranger).get("/training/templates/tabular-mlp-classifier/launch/").content.decode()
    )
    data = {"training_set": ts.pk, "label": "label", "features": "a, b", "resource_class": "cpu", "priority": 5,
            "max_runtime_s": 60, "seed": 0, "dataset": "breast_cancer"}  # fmt: skip
    refused = browser(stranger).post("/training/templates/tabular-mlp-classifier/launch/", data)
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not TrainingJob.objects.exists()
    response = client.post("/training/templates/tabular-mlp-classifier/launch/", data)
    job = TrainingJob.objects.get()
    assert response.status_code == 302 and job.queue == "cpu.uae-north"
    assert job.data == {"training_set": ts.pk, "label": "label", "features": ["a", "b"]}


def test_launch_needs_role(auditor):
    assert browser(auditor).get("/training/templates/digits-cnn/launch/").status_code == 403
    assert browser(auditor).get("/training/templates/nope/launch/").status_code == 404


def test_job_page_and_cancel_for_stranger(owner, stranger):
    job = job_launch(actor=owner, template="tabular-mlp-classifier", params=TINY)
    assert browser(stranger).get(f"/training/jobs/{job.pk}/").status_code == 404
    assert browser(stranger).post(f"/training/jobs/{job.pk}/cancel/").status_code == 404
    job.refresh_from_db()
    assert job.state == "queued"
    response = browser(owner).post(f"/training/jobs/{job.pk}/cancel/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "cancelled"


def test_queue_page(owner, stranger):
    mine = job_launch(actor=owner, template="digits-cnn", resource_class="gpu")
    body = browser(owner).get("/training/queues/").content.decode()
    assert "<code>gpu</code>" in body and f"#{mine.pk}" in body
    assert f"#{mine.pk} " not in browser(stranger).get("/training/queues/").content.decode()


def test_cost_page_totals_show_their_currency(owner, stranger, team, settings):
    settings.COST_CURRENCY = "USD"
    job = job_launch(actor=owner, template="digits-cnn", team=team.slug)
    TrainingJob.objects.filter(pk=job.pk).update(wall_s=3600, cost=0.1, state="succeeded")
    body = browser(owner).get("/training/costs/").content.decode()
    assert "Risk Analytics" in body and 'id="cost-total">$0.10<' in body and "0.1000" not in body
    assert 'id="cost-total">$0.00<' in browser(stranger).get("/training/costs/").content.decode()


def test_gpu_hint_on_underused_gpu_job(owner):
    from apps.training.services import gpu_hint

    job = job_launch(actor=owner, template="digits-cnn", resource_class="gpu")
    TrainingJob.objects.filter(pk=job.pk).update(state="succeeded", peak_gpu_mem_mb=40, gpu_s=10)
    job.refresh_from_db()
    assert "barely used its GPU" in gpu_hint(job)
    assert "barely used its GPU" in browser(owner).get("/training/costs/").content.decode()


def test_dashboard_card(owner):
    from apps.training.dashboard import cards

    job_launch(actor=owner, template="digits-cnn")
    card = cards(owner)[0]
    assert card["value"] == 0 and "1 queued" in card["detail"]


def test_seed_is_idempotent(owner, team):
    import io

    from apps.training.models import Sweep
    from apps.training.seed import seed

    for _ in range(2):
        seed(users={"engineer": owner}, team=team, out=io.StringIO())
    assert Sweep.objects.count() == 1 and TrainingJob.objects.filter(sweep=None).count() == 2
    assert TrainingJob.objects.filter(sweep__isnull=False).count() == 2  # parallelism 2 of a 4-trial grid


def test_job_page_shows_params_as_name_value_rows_not_a_dict(owner):
    job = job_launch(actor=owner, template="tabular-mlp-classifier", params={**TINY, "lr": 0.003})
    body = browser(owner).get(f"/training/jobs/{job.pk}/").content.decode()
    assert "{&#x27;" not in body and "{'" not in body  # no Python dict repr, for params or data
    assert '<span class="text-secondary">lr</span> = <span class="font-monospace">0.003</span>' in body
    assert '<span class="text-secondary">batch_size</span> = <span class="font-monospace">256</span>' in body
    assert '<span class="text-secondary">dataset</span> = <span class="font-monospace">wine</span>' in body
