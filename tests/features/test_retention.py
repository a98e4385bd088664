"""Retention (storage limitation): old offline partitions and online values go, daily and on demand."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.models import AuditEntry
from apps.core.permissions import share
from apps.features import online, services, tasks, training_sets
from apps.features.models import FeatureView, Partition
from tests.conftest import api_client_for
from tests.features.conftest import iso

URL = "/api/v1/feature-views/customer-stats/apply-retention"


def day_rows(when, keys=(0, 1, 2)):
    return [{"customer_id": k, "event_timestamp": iso(when + timedelta(hours=k)), "balance": 10.0 * k, "orders": k,
             "segment": "gold", "email": f"c{k}@example.com"} for k in keys]  # fmt: skip


@pytest.fixture
def aged(view, owner):
    """Rows 100 and 90 days old (keys 0-2) and 2 days old (keys 1-2), materialized online; retention 30 days."""
    now = timezone.now().replace(microsecond=0)
    old_a, old_b, new = now - timedelta(days=100), now - timedelta(days=90), now - timedelta(days=2)
    for when, keys in ((old_a, (0, 1, 2)), (old_b, (0, 1, 2)), (new, (1, 2))):
        services.feature_view_ingest(view=view, actor=owner, data=day_rows(when, keys))
    job = services.feature_view_materialize(view=view, actor=owner, start=now - timedelta(days=365), end=now)
    assert services.materialization_run(job_id=job.pk).state == "succeeded"
    view = services.feature_view_update(view=view, actor=owner, retention_days=30)
    return view, now


def online_statuses(owner):
    body = services.online_read(actor=owner, features=["customer-stats:balance"], entities={"customer_id": [0, 1, 2]})
    return body["results"]["customer-stats:balance"]["statuses"]


def test_old_partitions_and_online_values_go_newer_stay(aged, owner, feature_store, django_capture_on_commit_callbacks):
    view, now = aged
    before = list(Partition.objects.filter(view=view).order_by("date"))
    assert len(before) == 3 and online_statuses(owner) == ["present"] * 3
    old_files = [feature_store / p.path for p in before[:2]]
    with django_capture_on_commit_callbacks(execute=True):
        result = services.feature_view_apply_retention(view=view, actor=owner)
    assert result["partitions"] == 2 and result["rows"] == 6 and result["online_keys"] == 1
    assert result["files"] == [p.path for p in before[:2]]
    assert result["dates"] == sorted(p.date.isoformat() for p in before[:2])
    remaining = list(Partition.objects.filter(view=view))
    assert [p.pk for p in remaining] == [before[2].pk]
    assert not any(f.exists() for f in old_files) and not any(f.parent.exists() for f in old_files)
    assert (feature_store / before[2].path).exists()
    # key 0 had only old values: gone; keys 1, 2 have a 2-day-old value: kept
    assert online_statuses(owner) == ["missing", "present", "present"]
    view.refresh_from_db()
    assert view.row_count == 2 and view.statistics["balance"]["count"] == 2
    assert view.newest_event_at == now - timedelta(days=2) + timedelta(hours=2)
    assert view.retention_applied_at is not None
    entry = AuditEntry.objects.get(additional_data__event="features.retention_applied")
    assert entry.actor == owner
    data = entry.additional_data
    assert data["partitions"] == 2 and data["rows"] == 6 and data["online_keys"] == 1 and data["scheduled"] is False
    # a second run has nothing left to delete
    with django_capture_on_commit_callbacks(execute=True):
        again = services.feature_view_apply_retention(view=view, actor=owner)
    assert again["partitions"] == again["rows"] == again["online_keys"] == 0


def test_training_sets_built_before_are_unaffected(aged, owner, django_capture_on_commit_callbacks):
    view, now = aged
    ts = training_sets.training_set_create(
        actor=owner, name="before-retention", features=["customer-stats:balance"],
        entity_rows=[{"customer_id": k, "event_timestamp": iso(now - timedelta(days=80)), "label": k} for k in range(3)],
    )  # fmt: skip
    before = training_sets.training_set_load(ts, actor=owner)
    assert before.column("balance").to_pylist() == [0.0, 10.0, 20.0]
    with django_capture_on_commit_callbacks(execute=True):
        services.feature_view_apply_retention(view=view, actor=owner)
    ts.refresh_from_db()
    after = training_sets.training_set_load(ts, actor=owner)  # digest verified
    assert after.equals(before)


def test_a_failure_deletes_nothing(aged, owner, feature_store, monkeypatch, django_capture_on_commit_callbacks):
    view, _ = aged
    paths = [feature_store / p.path for p in Partition.objects.filter(view=view)]

    def boom(*args, **kwargs):
        raise RuntimeError("statistics failed")

    monkeypatch.setattr(services, "_refresh_statistics", boom)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        services.feature_view_apply_retention(view=view, actor=owner)
    assert Partition.objects.filter(view=view).count() == 3 and all(p.exists() for p in paths)
    assert not AuditEntry.objects.filter(additional_data__event="features.retention_applied").exists()


def test_online_expiry_never_removes_a_newer_value():
    key = online.view_prefix(999, 1) + "7"
    c = online.client()
    c.hset(key, mapping={"__ts": 2_000, "f": "1"})
    c.hset(key + "x", mapping={"__ts": 500, "f": "1"})
    assert online.expire_before(999, 1_000) == 1
    assert c.exists(key) and not c.exists(key + "x")


def test_api_owner_and_editor_run_it_viewer_403_stranger_404(aged, owner, collaborator, stranger):
    view, _ = aged
    assert api_client_for(stranger).post(URL).status_code == 404
    share(view, role="viewer", user=collaborator)
    assert api_client_for(collaborator).post(URL).status_code == 403
    assert Partition.objects.filter(view=view).count() == 3
    response = api_client_for(owner).post(URL)
    assert response.status_code == 200, response.content
    assert response.json()["partitions"] == 2 and response.json()["online_keys"] == 1
    share(view, role="editor", user=collaborator)
    assert api_client_for(collaborator).post(URL).json()["partitions"] == 0


def test_apply_without_retention_is_a_400(view, owner):
    response = api_client_for(owner).post(URL)
    assert response.status_code == 400 and "retention_days" in response.json()


@pytest.mark.parametrize("value", [0, -1, 36501, "abc", 1.5, True, [30]])
def test_invalid_retention_days_is_a_400(view, owner, customer, value):
    api = api_client_for(owner)
    response = api.patch("/api/v1/feature-views/customer-stats/", {"retention_days": value}, format="json")
    assert response.status_code == 400 and "retention_days" in response.json()
    response = api.post("/api/v1/feature-views/", {"name": "other", "entity": "customer", "retention_days": value,
                        "features": [{"name": "x", "dtype": "int64"}]}, format="json")  # fmt: skip
    assert response.status_code == 400 and "retention_days" in response.json()
    assert not FeatureView.objects.filter(name="other").exists()
    view.refresh_from_db()
    assert view.retention_days is None


def test_retention_days_set_and_cleared_through_the_api(view, owner, customer):
    api = api_client_for(owner)
    response = api.patch("/api/v1/feature-views/customer-stats/", {"retention_days": 30}, format="json")
    assert response.status_code == 200 and response.json()["retention_days"] == 30
    response = api.patch("/api/v1/feature-views/customer-stats/", {"retention_days": None}, format="json")
    assert response.status_code == 200 and response.json()["retention_days"] is None
    response = api.post("/api/v1/feature-views/", {"name": "other", "entity": "customer", "retention_days": 36500,
                        "features": [{"name": "x", "dtype": "int64"}]}, format="json")  # fmt: skip
    assert response.status_code == 201 and response.json()["retention_days"] == 36500


def test_browser_form_and_detail_page(client, owner, customer):
    client.force_login(owner)
    response = client.post("/features/new/", {"name": "kept", "entity": "customer", "features": "x:int64",
                           "region": "default", "ttl_seconds": 0, "source": "batch", "retention_days": 0})  # fmt: skip
    assert response.status_code == 200 and not FeatureView.objects.filter(name="kept").exists()
    response = client.post("/features/new/", {"name": "kept", "entity": "customer", "features": "x:int64",
                           "region": "default", "ttl_seconds": 0, "source": "batch", "retention_days": 45})  # fmt: skip
    assert response.status_code == 302 and FeatureView.objects.get(name="kept").retention_days == 45
    page = client.get("/features/kept/").content.decode()
    assert "45 days: older data is deleted daily" in page and "Share" in page


PAGE = "/features/customer-stats/"


def test_browser_changes_retention_and_applies_it_now(aged, client, owner):
    view, _ = aged
    client.force_login(owner)
    page = client.get(PAGE).content.decode()
    assert 'id="retention-form"' in page and "Apply now" in page
    response = client.post(PAGE + "retention/", {"retention_days": "0"}, follow=True)
    assert "greater than or equal to 1" in response.content.decode()
    view.refresh_from_db()
    assert view.retention_days == 30  # refused: unchanged
    response = client.post(PAGE + "retention/", {"retention_days": "60"}, follow=True)
    assert "Retention saved: data older than 60 days is deleted daily." in response.content.decode()
    view.refresh_from_db()
    assert view.retention_days == 60
    assert AuditEntry.objects.filter(object_pk=str(view.pk), changes__icontains="retention_days").exists()
    response = client.post(PAGE + "retention/apply/", follow=True)
    body = response.content.decode()
    assert "Retention applied: 6 offline rows in 2 files and 1 online keys" in body
    assert Partition.objects.filter(view=view).count() == 1
    client.post(PAGE + "retention/", {"retention_days": ""})
    view.refresh_from_db()
    assert view.retention_days is None
    response = client.post(PAGE + "retention/apply/", follow=True)
    assert "keeps its data forever; set retention_days first" in response.content.decode()


def test_browser_retention_viewer_403_stranger_404(aged, client, collaborator, stranger):
    view, _ = aged
    share(view, role="viewer", user=collaborator)
    client.force_login(collaborator)
    assert 'id="retention-form"' not in client.get(PAGE).content.decode()
    assert client.post(PAGE + "retention/", {"retention_days": "5"}).status_code == 403
    assert client.post(PAGE + "retention/apply/").status_code == 403
    client.force_login(stranger)
    assert client.post(PAGE + "retention/", {"retention_days": "5"}).status_code == 404
    assert client.post(PAGE + "retention/apply/").status_code == 404
    assert client.get(PAGE + "retention/").status_code == 405
    view.refresh_from_db()
    assert view.retention_days == 30 and Partition.objects.filter(view=view).count() == 3


def test_daily_task_queues_every_view_with_retention_and_runs_as_system(
    aged, owner, monkeypatch, django_capture_on_commit_callbacks
):  # fmt: skip
    view, _ = aged
    services.feature_view_create(actor=owner, name="forever", entity=view.entity,
                                 features=[{"name": "x", "dtype": "int64"}])  # fmt: skip
    sent = []
    monkeypatch.setattr(tasks.apply_retention, "apply_async", lambda args, queue: sent.append((args, queue)))
    assert tasks.retention_sweep() == {"queued": [view.pk]}
    assert sent == [([view.pk], "default")]
    with django_capture_on_commit_callbacks(execute=True):
        out = tasks.apply_retention(view.pk)
    assert out == {"view": view.pk, "partitions": 2, "rows": 6, "online_keys": 1}
    entry = AuditEntry.objects.filter(additional_data__event="features.retention_applied").get()
    assert entry.actor.username != owner.username
