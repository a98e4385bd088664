"""The runs table opens on the metrics people care about, remembers each user's column choice per
experiment, and writes numbers by magnitude."""

import re

import pytest

from apps.experiments.services import run_log_batch
from tests.conftest import page_client_for
from tests.experiments.factories import experiment, run

pytestmark = pytest.mark.django_db
KEYS = {
    "epoch": 8.0,
    "epoch_time_s": 1.25,
    "epoch_train_loss": 0.31,
    "lr": 3.806e-05,
    "val_acc": 0.9123,
    "val_loss": 0.27,
}


@pytest.fixture
def trained(owner):
    exp = experiment(owner)
    r = run(exp, owner, name="cnn", params={"lr": 3.806e-05, "batch_size": 64})
    run_log_batch(run=r, actor=owner, metrics=[{"key": k, "step": 8, "value": v} for k, v in KEYS.items()])
    return exp, r


def columns(html: str) -> list[str]:
    return re.findall(r"sort=-?metrics\.([^\"&]+)\"", html.split("<tbody>")[0].split('id="runs-table"')[1])


def test_runs_table_opens_on_validation_metrics_not_the_first_alphabetically(owner, trained):
    exp, _ = trained
    html = page_client_for(owner).get(f"/experiments/{exp.pk}/").content.decode()
    assert columns(html)[:2] == ["val_acc", "val_loss"]
    assert "epoch_time_s" not in columns(html)


def test_runs_table_opens_on_the_primary_metric_the_run_names(owner, trained):
    exp, r = trained
    run_log_batch(run=r, actor=owner, tags={"primary_metric": "epoch_train_loss"})
    html = page_client_for(owner).get(f"/experiments/{exp.pk}/").content.decode()
    assert columns(html)[:3] == ["epoch_train_loss", "val_acc", "val_loss"]


def test_runs_table_writes_numbers_by_magnitude_without_wrapping(owner, trained):
    exp, _ = trained
    html = page_client_for(owner).get(f"/experiments/{exp.pk}/?metric=epoch&metric=lr&metric=val_acc").content.decode()
    cells = dict(re.findall(r'<td class="text-end mono text-nowrap" data-metric="([^"]+)">([^<]*)</td>', html))
    assert cells == {"epoch": "8", "lr": "3.81e-05", "val_acc": "0.9123"}


def test_column_choice_is_remembered_per_user_and_experiment(owner, collaborator, trained):
    exp, _ = trained
    client = page_client_for(owner)
    response = client.post(
        f"/experiments/{exp.pk}/columns/", {"metric": ["lr", "epoch"], "param": ["batch_size"], "status": "finished"}
    )
    assert response.status_code == 302 and response["Location"] == f"/experiments/{exp.pk}/?status=finished"
    assert columns(client.get(f"/experiments/{exp.pk}/").content.decode()) == ["lr", "epoch"]
    other = experiment(owner, name="other")
    run_log_batch(
        run=run(other, owner),
        actor=owner,
        metrics=[{"key": "val_acc", "step": 0, "value": 0.5}, {"key": "lr", "step": 0, "value": 0.1}],
    )
    assert columns(client.get(f"/experiments/{other.pk}/").content.decode()) == ["val_acc", "lr"]  # per experiment
    page_client_for(owner).post(f"/experiments/{exp.pk}/share/", {"user": "collaborator", "role": "viewer"})
    assert columns(page_client_for(collaborator).get(f"/experiments/{exp.pk}/").content.decode())[0] == "val_acc"
    client.post(f"/experiments/{exp.pk}/columns/", {"reset": "1"})
    assert columns(client.get(f"/experiments/{exp.pk}/").content.decode())[:2] == ["val_acc", "val_loss"]


def test_unknown_column_is_refused_without_saving(owner, trained):
    exp, _ = trained
    client = page_client_for(owner)
    assert client.post(f"/experiments/{exp.pk}/columns/", {"metric": ["nope"]}).status_code == 302
    assert columns(client.get(f"/experiments/{exp.pk}/").content.decode())[:2] == ["val_acc", "val_loss"]
