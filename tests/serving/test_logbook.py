"""Prediction logs and traffic windows: batched writes, sampling, pseudonymised keys, counts that add up."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.serving import histogram
from apps.serving.ids import pseudonymise_key
from apps.serving.inference import cache, logbook, shadow
from apps.serving.inference.logbook import flush, logs_expire
from apps.serving.inference.predict import predict_call
from apps.serving.models import PredictionLog, TrafficWindow
from tests.serving.conftest import rows


@pytest.fixture(autouse=True)
def _quiet_background():
    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    logbook.discard()
    yield
    logbook.discard()
    cache.STATE.reset()


def predict(user, key=None, n=1, name="fraud"):
    body = {"inputs": rows(n)}
    if key is not None:
        body["key"] = key
    status, answer, _ = predict_call(user=user, token=None, endpoint_name=name, body=body)
    assert status == 200, answer
    return answer


def set_rate(endpoint, rate: float) -> None:
    endpoint.log_sample_rate = rate
    endpoint.save()


@pytest.mark.django_db
def test_n_predictions_are_written_with_one_insert_and_keys_pseudonymised(owner, endpoint):
    set_rate(endpoint, 1.0)
    for i in range(25):
        predict(owner, key=f"customer-{i}", n=2)
    assert PredictionLog.objects.count() == 0  # nothing is written on the request path
    with CaptureQueriesContext(connection) as queries:
        flush()
    # one statement executed for every row in one call and one transaction (Django records an
    # executemany as "<n> times: <sql>")
    inserts = [q["sql"] for q in queries.captured_queries if 'INSERT INTO "serving_predictionlog"' in q["sql"]]
    assert len(inserts) == 1 and inserts[0].startswith("25 times: ")
    logs = list(PredictionLog.objects.order_by("created_at", "id"))
    assert len(logs) == 25
    assert {log.key_hash for log in logs} == {pseudonymise_key(f"customer-{i}") for i in range(25)}
    assert all(log.caller_id == owner.pk and log.status == 200 and log.rows == 2 for log in logs)
    assert all(len(log.outputs["output"]) == 2 and len(log.inputs) == 2 for log in logs)
    raw = " ".join(str(v) for row in PredictionLog.objects.values_list() for v in row)
    assert "customer-" not in raw  # the key itself is never stored
    (window,) = TrafficWindow.objects.all()
    assert (window.requests, window.rows, window.errors, window.route, window.mode) == (25, 50, 0, "main", "live")
    assert sum(window.latency_hist) == 25 and window.latency_sum_ms > 0


@pytest.mark.django_db
def test_the_sample_rate_is_honoured_and_counters_see_everything(owner, endpoint):
    set_rate(endpoint, 0.0)
    for _ in range(50):
        predict(owner)
    flush()
    assert PredictionLog.objects.count() == 0
    assert TrafficWindow.objects.get().requests == 50

    set_rate(endpoint, 0.3)
    for _ in range(1000):
        predict(owner)
    flush()
    logged = PredictionLog.objects.count()
    assert abs(logged - 300) <= 4 * math.sqrt(1000 * 0.3 * 0.7), logged
    assert sum(TrafficWindow.objects.values_list("requests", flat=True)) == 1050


@pytest.mark.django_db
def test_flushes_add_to_the_same_minute_and_merge_histograms(owner, endpoint):
    for _ in range(3):
        predict(owner)
    flush()
    for _ in range(4):
        predict(owner)
    flush()
    windows = list(TrafficWindow.objects.all())
    if len(windows) == 2:  # the minute turned between the flushes
        assert sum(w.requests for w in windows) == 7
        return
    (window,) = windows
    assert window.requests == 7 and sum(window.latency_hist) == 7
    assert len(window.latency_hist) == histogram.BUCKETS


@pytest.mark.django_db
def test_a_window_row_written_by_another_process_is_added_to(owner, endpoint):
    predict(owner)
    (key,) = logbook.BUFFER.windows
    endpoint_id, route, mode, version_id, minute = key
    from datetime import UTC, datetime

    TrafficWindow.objects.create(
        endpoint_id=endpoint_id,
        route=route,
        mode=mode,
        version_id=version_id,
        minute=datetime.fromtimestamp(minute * 60, tz=UTC),
        requests=10,
        rows=10,
        latency_hist=[10] + [0] * (histogram.BUCKETS - 1),
    )
    flush()
    window = TrafficWindow.objects.get()
    assert window.requests == 11 and window.rows == 11 and sum(window.latency_hist) == 11


@pytest.mark.django_db
def test_a_full_buffer_drops_entries_and_counts_them(owner, endpoint, settings):
    settings.SERVING_LOG_BUFFER = 10
    set_rate(endpoint, 1.0)
    for _ in range(15):
        predict(owner)
    flush()
    assert PredictionLog.objects.count() == 10
    window = TrafficWindow.objects.get()
    assert (window.requests, window.logs_dropped) == (15, 5)


@pytest.mark.django_db
def test_a_failing_database_never_fails_a_prediction(owner, endpoint, monkeypatch):
    set_rate(endpoint, 1.0)
    predict(owner)

    def refuse(*args, **kwargs):
        raise RuntimeError("database is down")

    monkeypatch.setattr(PredictionLog.objects, "bulk_create", refuse)
    monkeypatch.setattr(logbook, "_upsert", refuse)
    flush()  # logs the loss, raises nothing
    assert logbook.pending() == (0, 0)
    assert predict(owner)["route"] == "main"


@pytest.mark.django_db
def test_retention_deletes_old_logs_and_windows(owner, endpoint, settings):
    settings.SERVING_LOG_RETENTION_DAYS = 7
    set_rate(endpoint, 1.0)
    predict(owner)
    flush()
    old = timezone.now() - timedelta(days=8)
    log = PredictionLog.objects.get()
    log.pk = None
    log.created_at = old
    log.save()
    window = TrafficWindow.objects.get()
    window.pk = None
    window.minute = old
    window.save()
    result = logs_expire()
    assert (result["logs_deleted"], result["windows_deleted"]) == (1, 1)
    assert PredictionLog.objects.count() == 1 and TrafficWindow.objects.count() == 1


@pytest.mark.django_db
def test_log_entries_name_the_caller_and_the_tokens_prefix_never_the_key(owner, endpoint):
    from apps.accounts.services import token_create

    set_rate(endpoint, 1.0)
    token, key = token_create(user=owner, name="svc", scopes=["predict"], expires_days=1, endpoints=["fraud"])
    status, _, _ = predict_call(user=owner, token=token, endpoint_name="fraud", body={"inputs": rows(1), "key": "k1"})
    assert status == 200
    flush()
    log = PredictionLog.objects.get()
    assert (log.caller_id, log.token_prefix, log.key_hash) == (owner.pk, token.prefix, pseudonymise_key("k1"))
    assert key not in str(PredictionLog.objects.values_list())


@pytest.mark.django_db(transaction=True)
def test_entries_of_a_deleted_endpoint_do_not_lose_the_others(owner, scorer):
    from tests.serving.conftest import make_endpoint, version_of

    for name in ("keep", "gone"):
        make_endpoint(owner, name, [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}])
    from apps.serving.models import Endpoint

    Endpoint.objects.filter(name__in=["keep", "gone"]).update(log_sample_rate=1.0)
    cache.STATE.reset()
    for name in ("keep", "gone", "keep"):
        predict(owner, name=name)
    Endpoint.objects.get(name="gone").delete()
    flush()
    assert PredictionLog.objects.count() == PredictionLog.objects.filter(endpoint__name="keep").count() == 2
    assert TrafficWindow.objects.get(endpoint__name="keep").requests == 2
