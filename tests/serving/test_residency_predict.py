"""Residency on the predict path (issue 17): a portal process whose region may not hold a version's
region never loads or serves it. The decision is made once, when the endpoint's plan is built (not
per request); each refused request answers 403 with the error shape, and the refusals are audited
as `residency.refused` at most once per endpoint and version per window, across processes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.catalog import services as catalog
from apps.core.models import AuditEntry
from apps.serving.inference import cache, runtime
from apps.serving.inference.cache import Miss
from apps.serving.inference.predict import predict_call
from apps.serving.services import residency as residency_serving
from tests.serving.conftest import make_endpoint, register, rows, version_of
from tests.serving.test_predict_api import client_for, post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.PORTAL_REGION = "uae-north"
    settings.PORTAL_REGIONS = ["uae-north", "eu-west"]
    settings.PORTAL_RESIDENCY_AUDIT_WINDOW_S = 300
    runtime.SESSIONS.clear()
    residency_serving.MEMO.forget()
    yield
    runtime.SESSIONS.clear()
    residency_serving.MEMO.forget()


@pytest.fixture
def gulf(owner, mlp_onnx):
    """Model `gulf-score` pinned to uae-north (v1), registered by the uae-north portal."""
    model = catalog.model_create(actor=owner, name="gulf-score", region="uae-north")
    register(model, owner, mlp_onnx[0])
    return model


@pytest.fixture
def gulf_endpoint(owner, gulf):
    return make_endpoint(
        owner, "gulf", [{"name": "main", "model": gulf, "version": version_of(gulf, 1)}], region="uae-north"
    )


def refusals() -> list[dict]:
    return [
        e.additional_data for e in AuditEntry.objects.filter(additional_data__event="residency.refused").order_by("id")
    ]


def another_process(settings, region: str = "default") -> None:
    """What a portal process of `region` starts with: no plans, sessions or refusal memo."""
    settings.PORTAL_REGION = region
    cache.STATE.reset()
    runtime.SESSIONS.clear()
    residency_serving.MEMO.forget()


def test_a_pinned_version_is_served_in_its_region_and_refused_403_elsewhere(owner, gulf, gulf_endpoint, settings):
    client = client_for(owner, endpoints=("gulf",))
    assert post(client, "gulf", {"inputs": rows(2)}).status_code == 200  # the uae-north portal serves it
    assert refusals() == []

    another_process(settings, "default")
    v1 = version_of(gulf, 1)
    for _ in range(5):
        response = post(client, "gulf", {"inputs": rows(2)})
        assert response.status_code == 403, response.content
        detail = response.json()["detail"]
        assert set(response.json()) == {"detail"}
        assert "pinned to region 'uae-north'" in detail and "region 'default'" in detail and "gulf-score" in detail
    assert runtime.cached_session(v1.pk) is None  # never loaded (decrypted) here
    (entry,) = refusals()  # five refused requests, one entry
    assert entry["endpoint"] == "gulf" and entry["action"] == "serve" and entry["region"] == "uae-north"
    assert entry["what"] == f"catalog.modelversion:{v1.pk}" and entry["refusals"] == 1


def test_the_decision_is_made_once_per_plan_not_per_request(owner, gulf, gulf_endpoint, settings, monkeypatch):
    another_process(settings, "default")
    calls = []
    real = residency_serving.serve_refusal
    monkeypatch.setattr(residency_serving, "serve_refusal", lambda *a: calls.append(a) or real(*a))
    for _ in range(4):
        status, body, _ = predict_call(user=owner, token=None, endpoint_name="gulf", body={"inputs": rows(1)})
        assert status == 403 and "uae-north" in body["detail"]
    assert len(calls) == 1  # when the plan was built


def test_refusals_are_audited_once_per_endpoint_and_version_per_window_across_processes(
    owner, gulf, gulf_endpoint, settings, monkeypatch
):
    another_process(settings, "default")

    def call() -> int:
        return predict_call(user=owner, token=None, endpoint_name="gulf", body={"inputs": rows(1)})[0]

    assert [call() for _ in range(3)] == [403, 403, 403]
    assert len(refusals()) == 1
    residency_serving.MEMO.forget()  # a second process of the same region: the entry in the window counts
    assert call() == 403 and len(refusals()) == 1
    # The window has passed (for the memo and for the entries in the table): one more entry,
    # counting the requests this process refused since.
    residency_serving.MEMO.forget()
    assert [call() for _ in range(2)] == [403, 403]
    later = timezone.now() + timedelta(seconds=301)
    monkeypatch.setattr(residency_serving.timezone, "now", lambda: later)
    residency_serving.MEMO.due = {k: (0.0, n) for k, (_, n) in residency_serving.MEMO.due.items()}
    assert call() == 403
    assert [e["refusals"] for e in refusals()] == [1, 3]


def test_on_the_event_loop_a_refusal_needs_no_database_once_audited(
    owner, gulf, gulf_endpoint, settings, monkeypatch, django_assert_num_queries
):
    another_process(settings, "default")
    monkeypatch.setattr("apps.serving.inference.predict.check_generation", lambda: None)  # no Redis here
    body = json.dumps({"inputs": rows(1)}).encode()
    assert predict_call(user=owner, token=None, endpoint_name="gulf", body=body)[0] == 403
    with django_assert_num_queries(0):
        status, answer, _ = predict_call(user=owner, token=None, endpoint_name="gulf", body=body, allow_load=False)
    assert status == 403 and "uae-north" in answer["detail"]
    residency_serving.MEMO.forget()  # the audit is due again: that is done off the loop
    with pytest.raises(Miss):
        predict_call(user=owner, token=None, endpoint_name="gulf", body=body, allow_load=False)
    assert len(refusals()) == 1


def test_a_shadow_of_a_version_this_process_may_not_serve_gets_no_copies(owner, gulf, scorer, settings):
    routes = [
        {"name": "main", "model": scorer, "version": version_of(scorer, 1)},
        {"name": "gulf-shadow", "model": gulf, "version": version_of(gulf, 1), "mode": "shadow"},
    ]
    make_endpoint(owner, "mixed", routes, region="uae-north")
    another_process(settings, "default")
    status, body, _ = predict_call(user=owner, token=None, endpoint_name="mixed", body={"inputs": rows(1)})
    assert status == 200 and body["model"] == "fraud-score"  # the unpinned live route serves
    assert cache.plan_for("mixed", True).shadows == ()
    assert runtime.cached_session(version_of(gulf, 1).pk) is None
    (entry,) = refusals()
    assert entry["endpoint"] == "mixed" and entry["region"] == "uae-north"
