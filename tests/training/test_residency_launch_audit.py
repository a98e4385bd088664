"""Residency at launch (issue 17): a training job or sweep asked to run in another region than its
pinned training data is refused with a 400 naming `region` (as before) and the refusal is audited
as `residency.refused`, by the caller, on the training set; launches that agree audit nothing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.core.models import AuditEntry
from apps.training import services
from apps.training.models import Sweep, TrainingJob
from apps.training.services.routing import resolve_route
from tests.training.test_residency_training import JOBS, launch_body, pinned_set

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.PORTAL_REGIONS = ["uae-north", "eu-west"]


def refusals() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(additional_data__event="residency.refused").order_by("id"))


def test_a_job_in_another_region_than_its_data_answers_400_and_is_audited(api_owner, owner):
    ts = pinned_set(owner)
    response = api_owner.post(JOBS, launch_body(ts, region="eu-west"), format="json")
    assert response.status_code == 400, response.content
    message = response.json()["region"][0]
    assert "pinned to region 'uae-north'" in message and "cannot run in 'eu-west'" in message
    assert not TrainingJob.objects.exists()
    (entry,) = refusals()
    data = entry.additional_data
    assert entry.actor == owner and entry.object_pk == str(ts.pk)
    assert data["region"] == "uae-north" and data["job_region"] == "eu-west" and data["why"] == message
    assert data["what"] == f"features.trainingset:{ts.pk}"


def test_a_job_in_the_data_region_is_not_refused_and_audits_no_refusal(api_owner, owner):
    response = api_owner.post(JOBS, launch_body(pinned_set(owner), region="uae-north"), format="json")
    assert response.status_code == 201, response.content
    assert refusals() == []


def test_a_sweep_in_another_region_than_its_data_is_refused_and_audited(owner):
    ts = pinned_set(owner)
    with pytest.raises(ValidationError) as raised:
        services.sweep_create(
            actor=owner, name="s1", template="tabular-mlp-classifier", method="grid",
            space={"lr": {"values": [0.01, 0.05]}}, params={"epochs": 1}, region="eu-west",
            data={"training_set": ts.pk, "label": "label", "features": ["a", "b"]},
        )  # fmt: skip
    assert "region" in raised.value.message_dict
    assert not Sweep.objects.exists()
    (entry,) = refusals()
    assert entry.actor == owner and entry.additional_data["job_region"] == "eu-west"


def test_resolve_route_audits_its_refusal_with_the_actor_and_object_it_is_given(owner):
    ts = pinned_set(owner)
    with pytest.raises(ValidationError):
        resolve_route(
            resource_class="cpu", region="eu-west", data_region="uae-north", allow_cpu_fallback=False,
            actor=owner, obj=ts,
        )  # fmt: skip
    assert [e.additional_data["action"] for e in refusals()] == ["run a job in region 'eu-west'"]
    queue, region, _device, _warning = resolve_route(
        resource_class="cpu", region=None, data_region="uae-north", allow_cpu_fallback=False, actor=owner, obj=ts
    )
    assert region == "uae-north" and len(refusals()) == 1
