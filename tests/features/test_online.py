"""Online store: materialize then read, push, TTL, PII masking per permission, residency, fast path."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps as django_apps
from django.utils import timezone
from guardian.shortcuts import assign_perm

from apps.accounts.services import token_create
from apps.core.errors import Conflict
from apps.core.models import AuditEntry
from apps.core.permissions import share
from apps.features import fastpath, services
from apps.features.models import FeatureView
from tests.conftest import api_client_for
from tests.features.conftest import T0, iso

URL = "/api/v1/features/online"
REQUEST = {"features": ["customer-stats:balance", "customer-stats:orders", "customer-stats:email"],
           "entities": {"customer_id": [2, 0, 99]}}  # fmt: skip


def fast(user, body, scopes=("features",), raw=None, key=None, scheme="Token"):
    """Drive the ASGI fast path directly, like uvicorn would."""
    if key is None:
        _, key = token_create(user=user, name="fast", scopes=list(scopes), expires_days=1)
    scope = {"type": "http", "path": URL, "method": "POST", "client": ("127.0.0.1", 5000),
             "headers": [(b"authorization", f"{scheme} {key}".encode()), (b"content-type", b"application/json")]}  # fmt: skip
    messages = [{"type": "http.request", "body": raw if raw is not None else json.dumps(body).encode()}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    assert fastpath.handles(scope)
    async_to_sync(fastpath.handle)(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_materialize_then_read(materialized, owner):
    body = services.online_read(actor=owner, features=REQUEST["features"], entities=REQUEST["entities"])
    assert body["results"]["customer-stats:balance"] == {"values": [201.0, 1.0, None],
                                                         "statuses": ["present", "present", "missing"]}  # fmt: skip
    assert body["results"]["customer-stats:orders"]["values"] == [3, 1, None]
    assert body["results"]["customer-stats:email"]["values"] == ["c2@example.com", "c0@example.com", None]
    assert body["event_timestamps"]["customer-stats"][0] == iso(T0 + timedelta(days=1, hours=2))
    job = materialized.materializations.get()
    assert (job.state, job.progress, job.rows_read, job.keys_written) == ("succeeded", 1.0, 6, 3)
    assert materialized.last_materialized_at is not None


def test_materialize_respects_the_time_range(ingested, owner):
    job = services.feature_view_materialize(view=ingested, actor=owner, start=T0, end=T0 + timedelta(hours=12))
    services.materialization_run(job_id=job.pk)
    body = services.online_read(actor=owner, features=["customer-stats:balance"], entities={"customer_id": [0, 1]})
    assert body["results"]["customer-stats:balance"]["values"] == [0.0, 100.0]  # day-2 rows are outside the range


def test_ttl_expiry_is_reported(materialized, owner):
    services.feature_view_update(view=materialized, actor=owner, ttl_seconds=3600)  # data is from 2024
    body = services.online_read(actor=owner, features=["customer-stats:balance"], entities={"customer_id": [1]})
    assert body["results"]["customer-stats:balance"] == {"values": [None], "statuses": ["expired"]}


def test_push_writes_online_and_logs_offline(view, owner):
    with pytest.raises(Conflict, match="batch view"):
        services.feature_view_push(view=view, actor=owner, data=[])
    assert api_client_for(owner).post(f"/api/v1/feature-views/{view.name}/push", [], format="json").status_code == 409
    view = services.feature_view_update(view=view, actor=owner, source="push")
    now = timezone.now()
    row = {"customer_id": 5, "event_timestamp": iso(now), "balance": 9.5, "orders": 1, "segment": "new", "email": None}
    assert services.feature_view_push(view=view, actor=owner, data=[row])["keys_written"] == 1
    older = {**row, "event_timestamp": iso(now - timedelta(days=1)), "balance": 1.0}
    assert services.feature_view_push(view=view, actor=owner, data=[older])["keys_written"] == 0
    body = services.online_read(actor=owner, features=["customer-stats:balance", "customer-stats:email"],
                                entities={"customer_id": [5]})  # fmt: skip
    assert body["results"]["customer-stats:balance"]["values"] == [9.5]
    assert body["results"]["customer-stats:email"]["statuses"] == ["missing"]
    assert view.partitions.filter(origin="push").count() == 2


def test_pii_is_masked_without_view_pii_and_unmasked_reads_are_audited(materialized, owner, collaborator):
    share(materialized, role="viewer", user=collaborator)
    body = services.online_read(actor=collaborator, features=REQUEST["features"], entities=REQUEST["entities"])
    assert body["results"]["customer-stats:email"]["values"] == ["***", "***", None]
    assert body["masked"] == ["customer-stats:email"]
    assert body["results"]["customer-stats:balance"]["values"][0] == 201.0
    assert not AuditEntry.objects.filter(additional_data__event="features.pii_read").exists()
    assign_perm("view_pii", collaborator, FeatureView.objects.get(pk=materialized.pk))
    body = services.online_read(actor=collaborator, features=REQUEST["features"], entities=REQUEST["entities"])
    assert body["results"]["customer-stats:email"]["values"][0] == "c2@example.com" and body["masked"] == []
    entry = AuditEntry.objects.get(additional_data__event="features.pii_read")
    assert entry.actor == collaborator and entry.additional_data["features"] == ["customer-stats:email"]


def test_fast_path_returns_the_same_json_as_the_drf_view(materialized, owner):
    drf = api_client_for(owner, scopes=("features",)).post(URL, REQUEST, format="json")
    assert drf.status_code == 200, drf.content
    status, body = fast(owner, REQUEST)
    assert status == 200 and body == drf.json()
    assert json.dumps(body) == json.dumps(drf.json())


@pytest.mark.parametrize(
    "body,status,needle",
    [
        ({"features": [], "entities": {"customer_id": [1]}}, 400, "non-empty list"),
        ({"features": ["customer-stats"], "entities": {"customer_id": [1]}}, 400, "view:feature"),
        ({"features": ["customer-stats:nope"], "entities": {"customer_id": [1]}}, 400, "no feature 'nope'"),
        ({"features": ["customer-stats:balance"], "entities": {"customer_id": ["1"]}}, 400, "must be int64"),
        ({"features": ["customer-stats:balance"], "entities": {"account": [1]}}, 400, "needs join key"),
        ({"features": ["customer-stats:balance"], "entities": {"customer_id": [1], "x": []}}, 400, "same length"),
        ({"features": ["customer-stats:balance"], "entities": {"customer_id": list(range(1001))}}, 400, "between 1"),
        ({"features": ["ghost:balance"], "entities": {"customer_id": [1]}}, 404, "No feature view"),
        ([1], 400, "JSON object"),
    ],
)
def test_bad_requests_get_clear_json_errors_on_both_paths(materialized, owner, body, status, needle):
    got_status, got = fast(owner, body)
    drf = api_client_for(owner).post(URL, body, format="json")
    assert got_status == status == drf.status_code
    assert needle in json.dumps(got) and got == drf.json()


def test_fast_path_auth_scope_and_size(materialized, owner, stranger):
    assert fast(owner, REQUEST, key="ptk_abc_def")[0] == 401
    assert fast(owner, REQUEST, scopes=("predict",))[0] == 403
    assert fast(owner, REQUEST, scopes=("read",))[0] == 200
    assert fast(stranger, REQUEST)[0] == 404
    assert fast(owner, None, raw=b"{not json")[0] == 400
    assert fast(owner, None, raw=b"x" * (fastpath.MAX_BODY + 1))[0] == 413


def test_cached_decisions_follow_sharing_and_revocation(materialized, owner, stranger):
    token, key = token_create(user=stranger, name="s", scopes=["features"], expires_days=1)
    assert fast(stranger, REQUEST, key=key)[0] == 404
    share(FeatureView.objects.get(pk=materialized.pk), role="viewer", user=stranger)
    status, body = fast(stranger, REQUEST, key=key)
    assert status == 200 and body["masked"] == ["customer-stats:email"]
    token.revoked_at = timezone.now()
    token.save()
    assert fast(stranger, REQUEST, key=key)[0] == 401


def test_residency_refusal_on_online_reads(materialized, owner, settings):
    settings.PORTAL_REGION = "eu-west"
    status, body = fast(owner, REQUEST)
    assert status == 403 and "region 'default'" in body["detail"]
    assert api_client_for(owner).post(URL, REQUEST, format="json").status_code == 403
    assert AuditEntry.objects.filter(additional_data__event="features.residency_denied").count() == 2


def test_bearer_is_served_by_the_fast_path_like_token(materialized, owner):
    token_status, token_body = fast(owner, REQUEST)
    bearer_status, bearer_body = fast(owner, REQUEST, scheme="Bearer")
    assert (bearer_status, bearer_body) == (token_status, token_body) == (200, token_body)
    assert fast(owner, REQUEST, scheme="Bearer", key="ptk_nope_nope")[0] == 401


def test_wrap_routes_only_token_posts_to_the_fast_path():
    calls = []

    async def django_app(scope, receive, send):
        calls.append(scope["path"])

    app = fastpath.wrap(django_app)
    for scope in ({"type": "http", "path": URL, "method": "GET", "headers": []},
                  {"type": "http", "path": URL, "method": "POST", "headers": [(b"cookie", b"sessionid=1")]},
                  {"type": "http", "path": "/api/v1/feature-views/", "method": "POST", "headers": []}):  # fmt: skip
        async_to_sync(app)(scope, None, None)
    assert len(calls) == 3


def test_near_cache_serves_repeats_and_drops_rows_written_elsewhere(materialized, owner):
    import time

    from apps.features import nearcache, online

    cache = nearcache.get()
    deadline = time.monotonic() + 5
    while not cache.ready and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.ready
    read = lambda: services.online_read(actor=owner, features=["customer-stats:balance"], entities={"customer_id": [1]})  # noqa: E731
    assert read()["results"]["customer-stats:balance"]["values"] == [101.0]
    key = online.view_prefix(materialized.pk, materialized.version) + "1"
    assert key in cache.rows  # the second read comes from memory
    online.client().hset(key, "balance", "55.5")  # another process writes
    deadline = time.monotonic() + 5
    while key in cache.rows and time.monotonic() < deadline:
        time.sleep(0.01)
    assert read()["results"]["customer-stats:balance"]["values"] == [55.5]


def test_near_cache_never_keeps_a_row_that_raced_with_a_write(materialized):
    from apps.features import nearcache, online

    cache = nearcache.get()
    groups = [([online.view_prefix(materialized.pk, 1) + "2"], ["balance", online.TS_FIELD])]
    epoch = cache.epoch
    fresh = online.read_rows(groups)
    cache.invalidate([groups[0][0][0]])  # a write landed while the read was in flight
    cache.store(groups, fresh, epoch)
    assert cache.lookup(groups) is None


# available_apps makes the flush after this test TRUNCATE ... CASCADE, which PostgreSQL needs here:
# auditlog's own (swapped-out) table still references django_content_type.
@pytest.mark.django_db(transaction=True, available_apps=[a.name for a in django_apps.get_app_configs()])
def test_materialization_runs_on_a_real_worker(live_worker, settings):
    """End to end: API request -> on_commit -> Celery queue `default` -> worker -> Redis -> read."""
    import time

    from apps.core.audit import system_user  # noqa: F401 - the worker may attribute audit entries
    from apps.features.models import MaterializationJob
    from tests.conftest import make_user
    from tests.features.conftest import rows

    settings.FEATURE_STORE_ROOT = settings.VAR_DIR / "features"  # the worker's default root
    steward = make_user("e2e-steward", "data-stewards")
    entity = services.entity_create(actor=steward, name="e2e", join_keys=[{"name": "customer_id", "dtype": "int64"}])
    view = services.feature_view_create(actor=steward, name="e2e-view", entity=entity,
                                        features=[{"name": "balance", "dtype": "float64"}])  # fmt: skip
    data = [{k: r[k] for k in ("customer_id", "event_timestamp", "balance")} for r in rows()]
    services.feature_view_ingest(view=view, actor=steward, data=data)
    r = api_client_for(steward).post(f"/api/v1/feature-views/{view.name}/materialize",
                                     {"start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}, format="json")  # fmt: skip
    assert r.status_code == 202, r.content
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = MaterializationJob.objects.get(pk=r.json()["id"])
        if job.state in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert job.state == "succeeded", (job.state, job.error, live_worker.log_path.read_text()[-2000:])
    body = services.online_read(actor=steward, features=["e2e-view:balance"], entities={"customer_id": [2]})
    assert body["results"]["e2e-view:balance"]["values"] == [201.0]
