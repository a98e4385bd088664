"""Training in a real browser: launch a GPU job into a new experiment, see its one warning with the
wait and "Run on CPU instead", and the sweep list's best metric."""

from __future__ import annotations

import pytest

from apps.training.models import TrainingJob
from apps.training.services import sweep_create
from tests.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _no_gpu_workers():
    """The server process asks the real worker registry (none online)."""


def test_launch_a_gpu_job_and_run_it_on_cpu_instead(portal_server, page, login, owner):
    login("owner")
    page.goto(f"{portal_server}/training/templates/digits-cnn/launch/")
    options = page.locator("#id_dataset option").all_inner_texts()
    assert options == ["digits"]
    page.fill("#id_experiment_name", "digits-study")
    page.fill("#id_run_name", "first-cnn")
    page.fill("#id_p_epochs", "1")
    page.select_option("#id_resource_class", "gpu")
    screenshot(page, "training-launch")
    page.click("text=Launch job")
    page.wait_for_selector("#job-warning")
    assert page.locator("text=No GPU worker is online").count() == 1
    assert "Waiting for" in page.locator("#job-warning").inner_text()
    assert page.locator("#sharing").is_visible() and "not started yet" in page.locator("#job-attempt").inner_text()
    screenshot(page, "training-job-waiting-for-gpu")
    page.click("#run-on-cpu")
    page.wait_for_selector("text=now waits on the CPU queue")
    job = TrainingJob.objects.select_related("run", "experiment").get()
    assert (job.queue, job.experiment.name, job.run.name) == ("cpu", "digits-study", "first-cnn")
    assert page.locator("#run-on-cpu").count() == 0
    screenshot(page, "training-job-moved-to-cpu")


def test_sweep_pages_show_the_best_metric(portal_server, page, login, owner):
    sweep = sweep_create(actor=owner, name="width-search", template="tabular-mlp-classifier", method="grid",
                         space={"hidden_units": {"values": [4, 8]}},
                         params={"epochs": 1, "batch_size": 256, "layers": 1, "patience": 0}, parallelism=2)  # fmt: skip
    first, second = sweep.jobs.order_by("trial_number")
    TrainingJob.objects.filter(pk=first.pk).update(state="succeeded", metrics={sweep.metric: 0.312345678})
    TrainingJob.objects.filter(pk=second.pk).update(state="succeeded", metrics={sweep.metric: 0.4401})
    sweep.best_job, sweep.state = first, "succeeded"
    sweep.save(update_fields=["best_job", "state"])
    login("owner")
    page.goto(f"{portal_server}/training/sweeps/")
    assert page.locator("td.sweep-best").inner_text() == f"{sweep.metric} 0.3123"
    screenshot(page, "training-sweep-list")
    page.click("td.sweep-best a")
    page.wait_for_url(f"{portal_server}/training/jobs/{first.pk}/")
    page.goto(f"{portal_server}/training/sweeps/{sweep.pk}/")
    assert page.locator("#sharing").is_visible()
    screenshot(page, "training-sweep-detail")
