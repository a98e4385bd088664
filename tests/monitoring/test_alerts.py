"""Alerts: deduplication (a storm is one alert with a count), states and their 409s, assignment,
history, who hears of it, and the alerts other apps' events raise (canary rollback, failed jobs,
a worker gone and back)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from django.utils import timezone

from apps.monitoring.models import Alert
from apps.monitoring.services.alerts import alert_acknowledge, alert_raise, alert_resolve
from apps.notifications.models import Notification

pytestmark = pytest.mark.django_db
ALERTS = "/api/v1/monitoring/alerts/"


@pytest.fixture
def alert(cancer_endpoint):
    alert, opened = alert_raise(kind="drift", dedup_key="drift:test", title="Drift on cancer", endpoint=cancer_endpoint)
    assert opened
    return alert


def test_a_storm_is_one_alert_with_a_count_and_the_highest_severity(alert, cancer_endpoint):
    for _ in range(3):
        again, opened = alert_raise(
            kind="drift", dedup_key="drift:test", title="Drift on cancer", endpoint=cancer_endpoint
        )
        assert not opened and again.pk == alert.pk
    alert_raise(kind="drift", dedup_key="drift:test", title="Drift", severity="critical", endpoint=cancer_endpoint)
    alert.refresh_from_db()
    assert alert.count == 5 and alert.severity == "critical" and Alert.objects.count() == 1
    assert [e.action for e in alert.events.all()] == ["opened", "repeated", "repeated", "repeated", "repeated"]


def test_after_resolution_the_same_key_opens_a_new_alert(alert, owner, cancer_endpoint):
    alert_resolve(alert=alert, actor=owner, note="retrained")
    fresh, opened = alert_raise(kind="drift", dedup_key="drift:test", title="Drift again", endpoint=cancer_endpoint)
    assert opened and fresh.pk != alert.pk and fresh.count == 1


def test_states_move_forward_only(alert, api_owner):
    url = f"{ALERTS}{alert.pk}/"
    body = api_owner.post(url + "acknowledge", {"note": "looking"}, format="json").json()
    assert body["state"] == "acknowledged" and body["assignee"] == "owner"
    assert api_owner.post(url + "acknowledge", {}, format="json").status_code == 409
    assert api_owner.post(url + "resolve", {}, format="json").json()["state"] == "resolved"
    answer = api_owner.post(url + "resolve", {}, format="json")
    assert answer.status_code == 409 and "already resolved" in answer.json()["detail"]
    history = api_owner.get(url).json()["history"]
    assert [h["action"] for h in history] == ["opened", "acknowledged", "resolved"]
    assert history[1]["actor"] == "owner" and history[1]["note"] == "looking"


def test_assign_to_someone_who_may_act(
    alert, api_owner, collaborator, stranger, owner, cancer_endpoint, django_capture_on_commit_callbacks
):
    from apps.core.sharing import share_object

    url = f"{ALERTS}{alert.pk}/"
    answer = api_owner.patch(url, {"assignee": stranger.username}, format="json")
    assert answer.status_code == 400 and "assignee" in answer.json()
    share_object(obj=cancer_endpoint, actor=owner, role="editor", user=collaborator)
    with django_capture_on_commit_callbacks(execute=True):
        answer = api_owner.patch(url, {"assignee": collaborator.username}, format="json")
    assert answer.json()["assignee"] == collaborator.username
    assert Notification.objects.filter(recipient=collaborator, kind="alert.assigned").exists()
    assert api_owner.patch(url, {"assignee": None}, format="json").json()["assignee"] is None


def test_filters_and_strangers(alert, api_owner, api_stranger, api_admin):
    assert api_owner.get(ALERTS, {"state": "open", "endpoint": "cancer"}).json()["count"] == 1
    assert api_owner.get(ALERTS, {"severity": "critical"}).json()["count"] == 0
    assert api_owner.get(ALERTS, {"state": "nonsense"}).status_code == 400
    assert api_stranger.get(ALERTS).json()["count"] == 0
    assert api_stranger.get(f"{ALERTS}{alert.pk}/").status_code == 404
    assert api_stranger.post(f"{ALERTS}{alert.pk}/resolve", {}, format="json").status_code == 404
    assert api_admin.get(f"{ALERTS}{alert.pk}/").json()["object"] == {"type": "endpoint", "name": "cancer", "url": ""}


def test_the_owner_is_notified_and_platform_alerts_go_to_admins(
    alert, owner, admin_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        alert_raise(
            kind="worker_offline", dedup_key="worker_offline:w1", title="Worker w1 is offline", severity="critical"
        )
    assert Notification.objects.filter(recipient=admin_user, kind="alert.critical").exists()
    platform = Alert.objects.get(dedup_key="worker_offline:w1")
    from apps.core.permissions import can

    assert can(admin_user, "view", platform) and not can(owner, "view", platform)
    with pytest.raises(Exception):  # noqa: B017  (NotFound: the owner cannot see a platform alert)
        alert_acknowledge(alert=platform, actor=owner)


def test_a_rolled_back_canary_raises_an_alert_once(owner, cancer_endpoint, cancer_model):
    from apps.serving.models import Canary

    now = timezone.now()
    canary = Canary.objects.create(
        endpoint=cancer_endpoint, version=cancer_model, baseline_route="main", steps=[10, 100], step_interval_s=60,
        started_by=owner, step_started_at=now, next_evaluation_at=now,
    )  # fmt: skip
    assert not Alert.objects.exists()
    canary.state, canary.reason = Canary.State.ROLLED_BACK, "error rate 12% against 1%"
    canary.save()
    canary.save()  # saved again: still one event
    alert = Alert.objects.get(kind="canary_rollback")
    assert alert.count == 1 and alert.endpoint == cancer_endpoint and "error rate" in alert.description


def test_failed_training_jobs_of_one_model_are_one_alert_for_their_owner(owner, stranger):
    from apps.experiments.models import Experiment
    from apps.training.models import TrainingJob

    experiment = Experiment.objects.create(owner=owner, name="alerts")
    jobs = [
        TrainingJob.objects.create(
            owner=owner, model_name="fresh-model", template="tabular-mlp", queue="cpu", experiment=experiment
        )
        for _ in range(2)
    ]
    for job in jobs:
        job.state, job.error = TrainingJob.State.FAILED, "CUDA out of memory"
        job.save()
        job.save()
    alert = Alert.objects.get(kind="job_failed")
    assert alert.count == 2 and alert.owner == owner and alert.model is None
    from apps.core.permissions import can

    assert can(owner, "view", alert) and can(owner, "change", alert) and not can(stranger, "view", alert)


def test_a_worker_gone_is_reported_once_and_resolves_when_it_returns(settings):
    from apps.core.workers import HEARTBEAT_PREFIX, redis_client
    from apps.monitoring.services.workers import SEEN_KEY, workers_watch

    client = redis_client()
    client.delete(SEEN_KEY)
    key = f"{HEARTBEAT_PREFIX}test-worker@host"
    beat = json.dumps({"hostname": "test-worker@host", "queues": ["gpu.test-region"], "pid": 1, "host": "h"})
    try:
        client.set(key, beat, ex=30)
        assert workers_watch()["offline"] == []
        client.delete(key)
        seen = json.loads(client.hget(SEEN_KEY, "test-worker@host"))
        client.hset(SEEN_KEY, "test-worker@host", json.dumps({**seen, "at": time.time() - 3600}))
        assert workers_watch()["offline"] == ["test-worker@host"]
        assert workers_watch()["offline"] == []  # reported once
        alert = Alert.objects.get(kind="worker_offline")
        assert alert.severity == "critical" and "gpu.test-region" in alert.title and alert.count == 1
        client.set(key, beat, ex=30)
        assert workers_watch()["back"] == ["test-worker@host"]
        alert.refresh_from_db()
        assert alert.state == "resolved" and alert.events.last().note == "The worker is back online."
    finally:
        client.delete(key)
        client.delete(SEEN_KEY)


def test_alert_times_are_kept(alert):
    assert alert.first_seen <= alert.last_seen <= timezone.now() + dt.timedelta(seconds=1)
