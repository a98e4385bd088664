"""Incident webhooks: the API (admins only, the secret write-only and encrypted), the payload,
and deliveries against a real local HTTP server: signature verified on the receiving side, the
same delivery id on every retry, backoff with bounded jitter, dead letters, refused connections."""

from __future__ import annotations

import json
import random
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from apps.core import vault
from apps.core.models import AuditEntry, VaultBlob
from apps.monitoring.models import Alert, IncidentWebhook, WebhookAttempt, WebhookDelivery
from apps.monitoring.webhooks import (
    backoff_s,
    delivery_attempt,
    payload_build,
    webhook_create,
    webhook_verify,
    webhooks_dispatch,
    webhooks_due,
)
from apps.monitoring.webhooks.delivery import backoff_ceiling_s
from apps.monitoring.webhooks.tasks import deliver_webhook
from tests.conftest import api_client_for

URL = "/api/v1/monitoring/webhooks/"
SECRET = "receiver-shared-secret-0123456789"


# --- a real receiver -------------------------------------------------------------------------------


class Receiver:
    """A local HTTP server answering the statuses in `script` in turn (then `then`), recording
    every request's headers and raw body."""

    def __init__(self, script=(), then=200):
        self.script, self.then, self.requests = list(script), then, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.script.pop(0) if receiver.script else receiver.then
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"receiver says no")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(script=(), then=200):
        made.append(Receiver(script, then))
        return made[-1]

    yield make
    for r in made:
        r.close()


def make_alert(severity="critical", **extra) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        kind="drift", severity=severity, dedup_key=f"drift:{severity}:{now.timestamp()}", title="Drift on credit-risk",
        description="PSI 0.4 on income", first_seen=now, last_seen=now, **extra,
    )  # fmt: skip


def make_webhook(admin, url, **extra) -> IncidentWebhook:
    fields = {"name": "pager", "events": list(IncidentWebhook.EVENTS), "min_severity": "warning", "secret": SECRET}
    return webhook_create(actor=admin, url=url, **(fields | extra)).webhook


def send_until_final(delivery: WebhookDelivery) -> list[str]:
    """Run the task body synchronously for each attempt, each when it is due."""
    results = []
    for _ in range(20):
        delivery.refresh_from_db()
        if delivery.state not in WebhookDelivery.ACTIVE_STATES:
            break
        results.append(delivery_attempt(delivery.pk, now=delivery.next_attempt_at))
    return results


# --- deliveries over real HTTP ---------------------------------------------------------------------


@pytest.mark.django_db
def test_fails_twice_then_delivers_signed_with_one_delivery_id(admin_user, receiver, settings):
    settings.MONITORING_WEBHOOK_MAX_ATTEMPTS = 8
    server = receiver(script=[500, 500], then=200)
    make_webhook(admin_user, server.url)
    alert = make_alert()
    assert webhooks_dispatch(alert, "alert.opened") == 1
    delivery = WebhookDelivery.objects.get()
    assert deliver_webhook(delivery.pk) == {"delivery": delivery.pk, "result": "retrying"}  # the task, in process
    assert send_until_final(delivery) == ["retrying", "delivered"]

    assert len(server.requests) == 3
    ids = {headers["X-Portal-Delivery"] for headers, _ in server.requests}
    assert ids == {str(delivery.delivery_id)}
    bodies = {body for _, body in server.requests}
    assert len(bodies) == 1  # the same bytes on every retry
    for headers, body in server.requests:
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Portal-Event"] == "alert.opened"
        assert webhook_verify(SECRET, headers["X-Portal-Timestamp"], body, headers["X-Portal-Signature"])
        assert not webhook_verify("another-secret-0123456789", headers["X-Portal-Timestamp"], body,
                                  headers["X-Portal-Signature"])  # fmt: skip
        assert not webhook_verify(SECRET, headers["X-Portal-Timestamp"], body + b" ", headers["X-Portal-Signature"])
    payload = json.loads(bodies.pop())
    assert payload["event"] == "alert.opened"
    assert payload["alert"] == {"id": alert.pk, "kind": "drift", "severity": "critical", "state": "open", "count": 1}
    assert (payload["impact"], payload["urgency"]) == (1, 1)

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("delivered", 3, None)
    attempts = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("attempt"))
    assert [(a.attempt, a.status_code, a.state) for a in attempts] == [
        (1, 500, "retrying"), (2, 500, "retrying"), (3, 200, "delivered"),
    ]  # fmt: skip
    assert "HTTP 500" in attempts[0].error and attempts[2].error == ""
    for a in attempts[:2]:  # each retry scheduled within its backoff ceiling (full jitter)
        assert timedelta(0) <= a.next_attempt_at - a.at <= timedelta(seconds=backoff_ceiling_s(a.attempt) + 1)
    assert deliver_webhook(delivery.pk)["result"] == "skipped"  # delivered: nothing more is sent
    assert len(server.requests) == 3


@pytest.mark.django_db
def test_always_failing_receiver_is_dead_lettered_after_the_limit(admin_user, receiver, settings):
    settings.MONITORING_WEBHOOK_MAX_ATTEMPTS = 4
    server = receiver(then=500)
    make_webhook(admin_user, server.url)
    webhooks_dispatch(make_alert(), "alert.updated")
    delivery = WebhookDelivery.objects.get()
    assert send_until_final(delivery) == ["retrying", "retrying", "retrying", "dead"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("dead", 4, None)
    assert delivery.finished_at is not None
    assert len(server.requests) == 4
    assert delivery_attempt(delivery.pk, now=timezone.now() + timedelta(days=1)) == "skipped"
    assert len(server.requests) == 4
    # the dead letter stays in the delivery log
    client = api_client_for(admin_user)
    rows = client.get(f"{URL}{delivery.webhook_id}/deliveries/").json()["results"]
    assert [r["attempt"] for r in rows] == [4, 3, 2, 1]
    assert rows[0]["state"] == "dead" and rows[0]["next_attempt_at"] is None and rows[0]["status_code"] == 500
    assert rows[0]["delivery_id"] == str(delivery.delivery_id) and rows[0]["event"] == "alert.updated"
    assert set(rows[0]) == {"delivery_id", "event", "attempt", "status_code", "error", "state", "next_attempt_at", "at"}


@pytest.mark.django_db
def test_refused_connection_counts_as_a_failed_attempt(admin_user, settings):
    settings.MONITORING_WEBHOOK_MAX_ATTEMPTS = 2
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    make_webhook(admin_user, f"http://127.0.0.1:{port}/hook")
    webhooks_dispatch(make_alert(), "alert.opened")
    delivery = WebhookDelivery.objects.get()
    assert send_until_final(delivery) == ["retrying", "dead"]
    first = WebhookAttempt.objects.filter(delivery=delivery).order_by("attempt").first()
    assert first.status_code is None and "ConnectionError" in first.error


@pytest.mark.django_db
def test_a_claimed_attempt_is_not_sent_twice(admin_user, receiver):
    server = receiver(then=500)
    make_webhook(admin_user, server.url)
    webhooks_dispatch(make_alert(), "alert.opened")
    delivery = WebhookDelivery.objects.get()
    now = timezone.now()
    # a first worker claims it (the claim moves next_attempt_at past the send's timeout)...
    assert WebhookDelivery.objects.filter(pk=delivery.pk, next_attempt_at__lte=now).update(
        next_attempt_at=now + timedelta(seconds=35)
    )
    # ...so a second one (a duplicate task, the sweep) sends nothing meanwhile
    assert delivery_attempt(delivery.pk, now=now) == "skipped"
    assert webhooks_due(now=now) == 0
    assert server.requests == []
    # a claim whose sender died runs out, then the sweep sends it again
    assert webhooks_due(now=now + timedelta(seconds=60)) == 1


def test_backoff_grows_exponentially_with_bounded_full_jitter(settings):
    settings.MONITORING_WEBHOOK_BACKOFF_BASE_S = 2
    settings.MONITORING_WEBHOOK_BACKOFF_CAP_S = 600
    rng = random.Random(16)
    assert [backoff_ceiling_s(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600]
    means = []
    for n in range(1, 11):
        samples = [backoff_s(n, rng=rng) for _ in range(2000)]
        assert all(0 <= d <= backoff_ceiling_s(n) for d in samples)
        means.append(sum(samples) / len(samples))
    assert all(later > earlier for earlier, later in zip(means[:9], means[1:], strict=True))
    assert abs(means[3] - 8) < 0.5  # full jitter: uniform on [0, ceiling], mean half the ceiling


@pytest.mark.django_db
def test_dispatch_honours_events_severity_and_active(admin_user):
    make_webhook(admin_user, "https://example.com/a", name="all-warning")
    make_webhook(admin_user, "https://example.com/b", name="resolved-only", events=["alert.resolved"])
    make_webhook(admin_user, "https://example.com/c", name="critical", min_severity="critical")
    make_webhook(admin_user, "https://example.com/d", name="off", active=False, min_severity="info")
    assert webhooks_dispatch(make_alert("info"), "alert.opened") == 0
    assert webhooks_dispatch(make_alert("warning"), "alert.opened") == 1
    assert webhooks_dispatch(make_alert("critical"), "alert.opened") == 2
    assert webhooks_dispatch(make_alert("warning"), "alert.resolved") == 2
    with pytest.raises(ValueError):
        webhooks_dispatch(make_alert(), "alert.deleted")


@pytest.mark.django_db
def test_payload_names_the_configuration_item_and_links_back(owner, settings):
    from apps.catalog import services as catalog

    settings.PORTAL_BASE_URL = "https://portal.example.com/"
    model = catalog.model_create(actor=owner, name="credit-risk", description="")
    payload = payload_build(make_alert("warning", model=model), "alert.updated")
    assert payload["configuration_item"] == {"kind": "model", "name": "credit-risk"}
    assert (payload["impact"], payload["urgency"]) == (2, 2)
    assert payload["links"]["object"] == "https://portal.example.com/models/credit-risk/"
    assert payload["links"]["alert"] == f"https://portal.example.com/monitoring/alerts/{payload['alert']['id']}/"
    assert payload["occurred_at"].endswith("Z")
    platform = payload_build(make_alert("info"), "alert.opened")
    assert platform["configuration_item"] == {"kind": "platform", "name": "portal"}
    assert platform["links"]["object"] is None and (platform["impact"], platform["urgency"]) == (3, 3)
    assert set(payload) == {
        "event", "short_description", "description", "impact", "urgency", "configuration_item", "alert", "links",
        "occurred_at",
    }  # fmt: skip


def test_verify_refuses_an_old_timestamp():
    from apps.monitoring.webhooks import webhook_sign

    signature = webhook_sign(SECRET, 1_000_000, b"{}")
    assert webhook_verify(SECRET, 1_000_000, b"{}", signature, now=1_000_100)
    assert not webhook_verify(SECRET, 1_000_000, b"{}", signature, now=1_000_301)
    assert not webhook_verify(SECRET, "abc", b"{}", signature)
    assert not webhook_verify(SECRET, 1_000_000, b"{}", signature.removeprefix("sha256="), now=1_000_000)


# --- the API ---------------------------------------------------------------------------------------


def _on_disk(blob: VaultBlob) -> bytes:
    with vault.storage().open(blob.storage_key, "rb") as handle:
        return handle.read()


@pytest.mark.django_db
def test_create_generates_a_secret_shown_once_and_stored_encrypted(admin_user):
    client = api_client_for(admin_user)
    body = {"name": "pager", "url": "https://example.com/hook", "events": ["alert.opened"]}
    created = client.post(URL, body, format="json")
    assert created.status_code == 201, created.content
    answer = created.json()
    secret = answer["secret"]
    assert len(secret) >= 40 and answer["min_severity"] == "warning" and answer["active"] is True
    webhook = IncidentWebhook.objects.get()
    assert vault.blob_read(webhook.secret).decode() == secret
    assert secret.encode() not in _on_disk(webhook.secret)
    assert webhook.secret.purpose == "webhook-secret"
    for url in (URL, f"{URL}{webhook.pk}/"):
        shown = client.get(url)
        assert shown.status_code == 200 and secret not in shown.content.decode() and b'"secret"' not in shown.content
    entry = AuditEntry.objects.filter(additional_data__event="webhook.create").get()
    assert entry.actor == admin_user and secret not in json.dumps(entry.additional_data)
    # a given secret is not echoed
    given = client.post(URL, {**body, "name": "given", "secret": SECRET}, format="json").json()
    assert given["secret"] is None
    assert SECRET.encode() not in _on_disk(IncidentWebhook.objects.get(name="given").secret)


@pytest.mark.django_db(transaction=True)
def test_patch_secret_rotates_and_deletes_the_old_blob(admin_user):
    client = api_client_for(admin_user)
    pk = client.post(URL, {"name": "pager", "url": "https://example.com/h", "events": ["alert.opened"],
                           "secret": SECRET}, format="json").json()["id"]  # fmt: skip
    old = IncidentWebhook.objects.get(pk=pk).secret
    old_key = old.storage_key
    rotated = client.patch(f"{URL}{pk}/", {"secret": "a-new-secret-of-enough-length"}, format="json")
    assert rotated.status_code == 200 and rotated.json()["secret"] is None
    webhook = IncidentWebhook.objects.get(pk=pk)
    assert vault.blob_read(webhook.secret) == b"a-new-secret-of-enough-length"
    assert webhook.secret_rotated_at is not None
    assert not VaultBlob.objects.filter(pk=old.pk).exists()
    assert not vault.storage().exists(old_key)  # the ciphertext went after the commit
    generated = client.patch(f"{URL}{pk}/", {"secret": ""}, format="json").json()["secret"]
    assert vault.blob_read(IncidentWebhook.objects.get(pk=pk).secret).decode() == generated
    entry = AuditEntry.objects.filter(additional_data__event="webhook.secret_rotate").first()
    assert entry is not None and entry.actor == admin_user
    changed = client.patch(f"{URL}{pk}/", {"active": False, "min_severity": "critical"}, format="json").json()
    assert (changed["active"], changed["min_severity"], changed["name"]) == (False, "critical", "pager")
    deleted = client.delete(f"{URL}{pk}/")
    assert deleted.status_code == 204
    assert not IncidentWebhook.objects.exists() and not VaultBlob.objects.filter(purpose="webhook-secret").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "x", "url": "ftp://example.com/h", "events": ["alert.opened"]}, {"url"}),
        ({"name": "x", "url": "https:///nohost", "events": ["alert.opened"]}, {"url"}),
        ({"name": "x", "url": "https://example.com", "events": []}, {"events"}),
        ({"name": "x", "url": "https://example.com", "events": ["alert.deleted"]}, {"events"}),
        ({"name": "x", "url": "https://example.com", "events": ["alert.opened"], "min_severity": "high"},
         {"min_severity"}),
        ({"name": "x", "url": "https://example.com", "events": ["alert.opened"], "secret": "short"}, {"secret"}),
        ({"url": "javascript:alert(1)", "events": "alert.opened", "colour": "red"}, {"name", "url", "events",
                                                                                       "colour"}),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_each_field(admin_user, body, fields):
    answer = api_client_for(admin_user).post(URL, body, format="json")
    assert answer.status_code == 400, answer.content
    assert set(answer.json()) == fields
    assert not IncidentWebhook.objects.exists() and not VaultBlob.objects.exists()


@pytest.mark.django_db
def test_duplicate_name_and_bad_patch_are_400(admin_user):
    client = api_client_for(admin_user)
    body = {"name": "pager", "url": "https://example.com/h", "events": ["alert.opened"]}
    assert client.post(URL, body, format="json").status_code == 201
    again = client.post(URL, body, format="json")
    assert again.status_code == 400 and set(again.json()) == {"name"}
    pk = IncidentWebhook.objects.get().pk
    bad = client.patch(f"{URL}{pk}/", {"url": "file:///etc/passwd", "events": []}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"url", "events"}
    assert IncidentWebhook.objects.get().url == "https://example.com/h"
    assert VaultBlob.objects.count() == 1


@pytest.mark.django_db
def test_non_admins_get_403_on_the_collection_and_404_on_one(owner, auditor, admin_user):
    pk = make_webhook(admin_user, "https://example.com/h").pk
    for user in (owner, auditor):
        client = api_client_for(user)
        assert client.get(URL).status_code == 403
        assert client.post(URL, {"name": "n", "url": "https://e.com", "events": ["alert.opened"]},
                           format="json").status_code == 403  # fmt: skip
        for path in (f"{URL}{pk}/", f"{URL}{pk}/deliveries/", f"{URL}{pk + 99}/"):
            assert client.get(path).status_code == 404
        assert client.patch(f"{URL}{pk}/", {"active": False}, format="json").status_code == 404
        assert client.delete(f"{URL}{pk}/").status_code == 404
    from rest_framework.test import APIClient

    assert APIClient().get(URL).status_code == 401
    assert IncidentWebhook.objects.get().active is True


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_rows(admin_user):
    """The two lists cost the same at 5 and at 50 rows (as tests/core/test_list_costs.py measures)."""
    from tests.listcost import list_cost

    client = api_client_for(admin_user)
    hook = make_webhook(admin_user, "https://example.com/h", name="base")

    def add(start, stop):
        for i in range(start, stop):
            make_webhook(admin_user, f"https://example.com/{i}", name=f"w{i:03d}")
            d = WebhookDelivery.objects.create(webhook=hook, event="alert.opened", body="{}", state="retrying")
            WebhookAttempt.objects.create(delivery=d, attempt=1, status_code=503, state="retrying")

    add(0, 5)
    costs = {}
    for url in (f"{URL}?page_size=100", f"{URL}{hook.pk}/deliveries/?page_size=100"):
        client.get(url)
        costs[url] = [list_cost(client, url)]
    add(5, 50)
    for url in costs:
        client.get(url)
        costs[url].append(list_cost(client, url))
        assert costs[url][0].status == 200 and costs[url][0] == costs[url][1], (url, costs[url])
    assert client.get(f"{URL}{hook.pk}/deliveries/?page_size=100").json()["count"] == 50


@pytest.mark.django_db
def test_a_retry_survives_a_lost_task_through_the_sweep(admin_user, receiver, django_capture_on_commit_callbacks):
    server = receiver(script=[503], then=204)
    make_webhook(admin_user, server.url)
    with django_capture_on_commit_callbacks() as sent:  # the task is sent after the deliveries commit
        webhooks_dispatch(make_alert(), "alert.opened")
    assert len(sent) == 1
    delivery = WebhookDelivery.objects.get()
    with django_capture_on_commit_callbacks() as retry:  # the retry's countdown task...
        assert delivery_attempt(delivery.pk) == "retrying"
    assert len(retry) == 1
    delivery.refresh_from_db()
    # ...is lost with its worker: the schedule is in the database, and the sweep sends it once overdue
    assert webhooks_due(now=delivery.next_attempt_at) == 0  # its own task still has time
    late = delivery.next_attempt_at + timedelta(seconds=15)
    assert webhooks_due(now=late) == 1
    assert delivery_attempt(delivery.pk, now=late) == "delivered"
    assert [h["X-Portal-Delivery"] for h, _ in server.requests] == [str(delivery.delivery_id)] * 2


# --- through a real Celery worker ------------------------------------------------------------------


def _transactional():
    from tests.training.conftest import transactional_db_mark

    return transactional_db_mark()


@_transactional()
class TestThroughARealWorker:
    @pytest.fixture
    def vault_storage(self, settings):
        """The worker's vault (the settings' own, under VAR_DIR), not a per-test folder it cannot see."""

    def test_dispatch_after_commit_retries_and_delivers(self, live_worker, admin_user, receiver):
        import time

        server = receiver(script=[500, 502], then=200)
        make_webhook(admin_user, server.url)
        assert webhooks_dispatch(make_alert(), "alert.opened") == 1  # outside a transaction: sent at once
        delivery = WebhookDelivery.objects.get()
        deadline = time.monotonic() + 60  # base 2 s: the two retries wait at most 2 s and 4 s
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.state not in WebhookDelivery.ACTIVE_STATES:
                break
            time.sleep(0.2)
        log = live_worker.log_path.read_text()[-2000:]
        assert (delivery.state, delivery.attempts) == ("delivered", 3), log
        assert [h["X-Portal-Delivery"] for h, _ in server.requests] == [str(delivery.delivery_id)] * 3
        for headers, body in server.requests:
            assert webhook_verify(SECRET, headers["X-Portal-Timestamp"], body, headers["X-Portal-Signature"])
