"""Residency of training (issue 17): a job on a pinned training set makes a run pinned to that region,
and is refused (409, audited, nothing written) when its run or its model would land in an
experiment or a model pinned to another region."""

from __future__ import annotations

import pytest

from apps.catalog import services as catalog
from apps.core.models import AuditEntry
from apps.core.permissions import grant_owner
from apps.experiments import services as experiments
from apps.features.models import TrainingSet
from apps.training.models import TrainingJob

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/training/jobs/"


@pytest.fixture(autouse=True)
def regions(settings):
    settings.PORTAL_REGIONS = ["uae-north", "eu-west"]


def pinned_set(owner, region="uae-north") -> TrainingSet:
    ts = TrainingSet.objects.create(
        name="churn-set", features=["v:a"], region=region, path="x.parquet", columns=["cust", "a", "b", "label"],
        entity_digest="0" * 64, digest="0" * 64, lineage={}, owner=owner,
    )  # fmt: skip
    grant_owner(ts)
    return ts


def launch_body(ts: TrainingSet, **extra) -> dict:
    data = {"training_set": ts.pk, "label": "label", "features": ["a", "b"]}
    return {"template": "tabular-mlp-classifier", "data": data, **extra}


def test_the_run_of_a_job_on_pinned_data_is_pinned_to_its_region(api_owner, owner):
    response = api_owner.post(JOBS, launch_body(pinned_set(owner)), format="json")
    assert response.status_code == 201, response.content
    job = TrainingJob.objects.select_related("run").get(pk=response.json()["id"])
    assert job.run.region == "uae-north" and job.run.experiment.region == "default"


def test_a_job_on_pinned_data_into_an_experiment_of_another_region_is_refused(api_owner, owner):
    exp = experiments.experiment_create(actor=owner, name="eu-exp", region="eu-west")
    response = api_owner.post(JOBS, launch_body(pinned_set(owner), experiment=exp.pk), format="json")
    assert response.status_code == 409 and "eu-west" in response.json()["detail"]
    assert not TrainingJob.objects.exists() and not exp.runs.exists()
    entry = AuditEntry.objects.get(additional_data__event="residency.refused")
    assert entry.additional_data["region"] == "uae-north" and entry.actor == owner


def test_a_job_whose_model_is_pinned_elsewhere_is_refused_before_it_trains(api_owner, owner):
    catalog.model_create(actor=owner, name="eu-model", region="eu-west")
    response = api_owner.post(JOBS, launch_body(pinned_set(owner), model_name="eu-model"), format="json")
    assert response.status_code == 409 and "model 'eu-model'" in response.json()["detail"]
    assert not TrainingJob.objects.exists()
