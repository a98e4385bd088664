"""`/metrics` (issue #16, platform metrics): parsed with prometheus_client's own parser, the
request, predict and online-read instruments move with the right labels (Django chain and lean
ASGI paths alike), and the scrape-time gauges are there. Counters are per process and shared by
every test in it, so each test compares two scrapes."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create
from apps.accounts.tokens import new_key
from apps.core import metrics
from apps.features import fastpath as features_fastpath
from apps.monitoring.models import Alert, DriftReport
from apps.serving.inference import fastpath as predict_fastpath
from apps.serving.inference import logbook
from tests.conftest import page_client_for
from tests.features import conftest as features_fixtures
from tests.serving import conftest as serving_fixtures
from tests.serving.conftest import rows

# The serving and feature-store fixtures this module needs (a conftest's fixtures reach only its folder).
mlp_onnx, scorer, endpoint = serving_fixtures.mlp_onnx, serving_fixtures.scorer, serving_fixtures.endpoint
serving_quiet, vault_storage = serving_fixtures._serving_quiet, serving_fixtures.vault_storage
feature_store, customer, view = features_fixtures.feature_store, features_fixtures.customer, features_fixtures.view
ingested, materialized = features_fixtures.ingested, features_fixtures.materialized

pytestmark = pytest.mark.django_db
PREDICT_ROUTE = "/api/v1/endpoints/<str:name>/predict"


def scrape(client) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain; version=")
    out = {}
    for family in text_string_to_metric_families(response.content.decode()):
        assert family.name.startswith("portal_"), family.name
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def lean(module, path: str, key: str, body: bytes) -> int:
    """One request through a lean ASGI path, as uvicorn would send it."""
    scope = {"type": "http", "path": path, "method": "POST", "client": ("127.0.0.1", 5000),
             "headers": [(b"authorization", f"Token {key}".encode()), (b"content-type", b"application/json")]}  # fmt: skip
    messages = [{"type": "http.request", "body": body}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    assert module.handles(scope)
    async_to_sync(module.handle)(scope, receive, send)
    return sent[0]["status"]


@pytest.fixture
def admin_client(admin_user):
    return page_client_for(admin_user)


def test_requests_are_counted_by_route_pattern_method_and_status(admin_client, owner):
    before = scrape(admin_client)
    page = page_client_for(owner)
    assert page.get("/").status_code == 200
    assert page.get("/no-such-page/").status_code == 404
    brewed = str(page.generic("BREW", "/").status_code)  # the home page answers any method
    after = scrape(admin_client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    counted = "portal_http_requests_total"
    assert moved(counted, route="/", method="GET", status="200") == 1
    assert moved(counted, route="unmatched", method="GET", status="404") == 1
    assert moved(counted, route="/", method="other", status=brewed) == 1
    # The first scrape itself was counted too, under its route pattern.
    assert value(after, counted, route="/metrics", method="GET", status="200") >= 1
    timed = "portal_http_request_duration_seconds"
    assert moved(f"{timed}_count", route="/", method="GET") == 1
    assert moved(f"{timed}_sum", route="/", method="GET") > 0
    infinite = value(after, f"{timed}_bucket", route="/", method="GET", le="+Inf")
    assert infinite == value(after, f"{timed}_count", route="/", method="GET")


def test_predictions_are_counted_per_endpoint_and_route_on_both_paths(admin_client, owner, endpoint):
    _, key = token_create(user=owner, name="p", scopes=["predict"], expires_days=1, endpoints=["fraud"])
    before = scrape(admin_client)
    body = json.dumps({"inputs": rows(1)}).encode()
    # Django (DRF view) and the lean path; then one refused before it reached a model (400).
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.post("/api/v1/endpoints/fraud/predict", data=body, content_type="application/json").status_code == 200
    assert lean(predict_fastpath, "/api/v1/endpoints/fraud/predict", key, body) == 200
    assert lean(predict_fastpath, "/api/v1/endpoints/fraud/predict", key, b'{"nope": 1}') == 400
    logbook.discard()
    after = scrape(admin_client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("portal_predictions_total", endpoint="fraud", route="main", status="200") == 2
    assert moved("portal_predict_duration_seconds_count", endpoint="fraud", route="main") == 2
    assert moved("portal_predict_duration_seconds_bucket", endpoint="fraud", route="main", le="+Inf") == 2
    assert moved("portal_predict_duration_seconds_sum", endpoint="fraud", route="main") > 0
    # Requests: both paths under the one route pattern, the 400 too.
    assert moved("portal_http_requests_total", route=PREDICT_ROUTE, method="POST", status="200") == 2
    assert moved("portal_http_requests_total", route=PREDICT_ROUTE, method="POST", status="400") == 1
    assert moved("portal_http_request_duration_seconds_count", route=PREDICT_ROUTE, method="POST") == 3


def test_lean_online_reads_are_timed(admin_client, owner, materialized):
    _, key = token_create(user=owner, name="f", scopes=["features"], expires_days=1)
    before = scrape(admin_client)
    body = json.dumps({"features": ["customer-stats:balance"], "entities": {"customer_id": [0, 1]}}).encode()
    assert lean(features_fastpath, features_fastpath.PATH, key, body) == 200
    assert lean(features_fastpath, features_fastpath.PATH, key, b"{not json") == 400
    after = scrape(admin_client)
    read = "portal_online_read_duration_seconds_count"
    assert value(after, read, path="lean") - value(before, read, path="lean") == 1  # refusals are not reads
    for status in ("200", "400"):
        labels = {"route": features_fastpath.ROUTE, "method": "POST", "status": status}
        assert (
            value(after, "portal_http_requests_total", **labels) - value(before, "portal_http_requests_total", **labels)
            == 1
        )


def test_the_lean_paths_name_their_routes_as_django_does():
    from django.urls import resolve

    assert "/" + resolve("/api/v1/endpoints/x/predict").route == predict_fastpath.ROUTE
    assert "/" + resolve(features_fastpath.PATH).route == features_fastpath.ROUTE


def test_gauges_for_queues_workers_jobs_drift_and_alerts(admin_client, owner, endpoint):
    now = timezone.now()
    window = {"subject": "endpoint", "endpoint": endpoint, "start": now - timedelta(hours=1), "end": now}
    DriftReport.objects.create(**window, state="succeeded", status="drift")
    latest = DriftReport.objects.create(**window, state="succeeded", status="warning")
    DriftReport.objects.create(**window, state="failed")  # newer, but not a result
    DriftReport.objects.filter(pk=latest.pk).update(created_at=now + timedelta(seconds=1))
    DriftReport.objects.exclude(pk=latest.pk).filter(state="failed").update(created_at=now + timedelta(seconds=2))
    Alert.objects.create(kind="drift", severity="critical", dedup_key="drift:fraud", title="Drift on fraud",
                         endpoint=endpoint, first_seen=now, last_seen=now)  # fmt: skip
    Alert.objects.create(kind="drift", severity="critical", dedup_key="drift:old", title="Old", state="resolved",
                         first_seen=now, last_seen=now)  # fmt: skip
    samples = scrape(admin_client)
    assert value(samples, "portal_drift_status", endpoint="fraud") == 1
    assert value(samples, "portal_alerts_open", kind="drift", severity="critical") == 1
    assert ("portal_alerts_open", (("kind", "worker_offline"), ("severity", "info"))) in samples  # zeros are shown
    assert value(samples, "portal_jobs", kind="drift_report", state="succeeded") == 2
    assert value(samples, "portal_jobs", kind="drift_report", state="failed") == 1
    for kind in ("training", "materialization", "scoring"):
        assert (("portal_jobs", (("kind", kind), ("state", "queued")))) in samples
    for queue in ("cpu", "gpu", "default"):
        assert ("portal_queue_depth", (("queue", queue),)) in samples
        assert ("portal_workers", (("queue", queue),)) in samples
    assert value(samples, "portal_scrape_source_up", source="database") == 1
    assert value(samples, "portal_scrape_source_up", source="broker") == 1


def test_a_broker_that_cannot_be_read_costs_only_its_gauges(admin_client, monkeypatch):
    from apps.core import workers

    def down():
        raise ConnectionError("broker down")

    monkeypatch.setattr(workers, "workers_by_queue", down)
    samples = scrape(admin_client)
    assert value(samples, "portal_scrape_source_up", source="broker") == 0
    assert not any(name == "portal_queue_depth" for name, _ in samples)
    assert value(samples, "portal_scrape_source_up", source="database") == 1


def test_a_metrics_token_of_a_platform_admin_scrapes(client, admin_user):
    key, prefix, key_hash = new_key()
    ApiToken.objects.create(user=admin_user, name="prometheus", prefix=prefix, key_hash=key_hash, scopes=["metrics"])
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200
    assert b"portal_http_requests_total" in response.content


# --- the instruments themselves -------------------------------------------------------------------


def test_bucket_edges_are_inclusive_and_the_sum_adds_up():
    timings = metrics.Timings("t", ("a",), buckets=(0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.005, 0.01, 3.0):
        timings.observe(("x",), seconds)
    counts, total = timings.snapshot()[("x",)]
    assert counts == [2, 2, 1]  # <= 1 ms, <= 10 ms, beyond
    assert total == pytest.approx(3.0165)


def test_threads_lose_no_observation():
    timings = metrics.Timings("t", ("a",))

    def work():
        for _ in range(20_000):
            timings.observe(("x",), 0.0002)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(timings.snapshot()[("x",)][0]) == 160_000


def test_series_beyond_the_cap_are_filed_under_other(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_SERIES", 3)
    timings = metrics.Timings("t", ("a", "b"))
    for i in range(5):
        timings.observe((str(i), "x"), 0.001)
    snapshot = timings.snapshot()
    assert len(snapshot) == 4 and sum(snapshot[("other", "other")][0]) == 2


def test_switched_off_nothing_is_counted():
    timings = metrics.Timings("t", ("a",))
    timings.enabled = False
    timings.observe(("x",), 0.1)
    assert timings.snapshot() == {}


def test_the_text_escapes_label_values_and_parses(monkeypatch):
    from apps.monitoring.metrics import text

    odd = metrics.Timings("portal_http_request", ("route", "method", "status"))
    odd.observe(('/a"b\\c\nd', "GET", 200), 0.002)
    monkeypatch.setattr(text, "TIMED", ((odd, *text.TIMED[0][1:]),))
    families = {f.name: f for f in text_string_to_metric_families(text.timings_text())}
    (sample,) = families["portal_http_requests"].samples
    assert sample.labels == {"route": '/a"b\\c\nd', "method": "GET", "status": "200"} and sample.value == 1
    buckets = [s for s in families["portal_http_request_duration_seconds"].samples if s.name.endswith("_bucket")]
    assert [s.value for s in buckets if s.labels["le"] in ("0.001", "0.0025", "+Inf")] == [0, 1, 1]
