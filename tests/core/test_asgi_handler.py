"""PortalASGIHandler: every HTTP request runs its whole synchronous chain in one hop on the
bounded pool of web threads."""

import asyncio
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator

from apps.accounts.services import token_create
from apps.core.api import views as core_api_views
from apps.core.asgi_handler import PortalASGIHandler
from apps.experiments.models import MetricPoint
from portal.asgi import application
from tests.experiments.factories import experiment, run


@database_sync_to_async
def _setup(owner, stranger):
    r = run(experiment(owner), owner)
    _, mine = token_create(user=owner, name="t", scopes=["read", "write"], expires_days=1)
    _, theirs = token_create(user=stranger, name="t", scopes=["read", "write"], expires_days=1)
    return r, mine, theirs


async def _post(path: str, key: str, body) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [
        (b"host", b"testserver"),
        (b"authorization", f"Token {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(raw)).encode()),
    ]
    response = await HttpCommunicator(application, "POST", path, body=raw, headers=headers).get_response(timeout=10)
    return response["status"], json.loads(response["body"] or b"null")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_log_batch_is_served_on_a_web_thread_with_the_full_api_behaviour(owner, stranger, monkeypatch):
    r, mine, theirs = await _setup(owner, stranger)
    threads = []
    respond = PortalASGIHandler._respond

    def spy(self, scope, body_file):
        threads.append(threading.current_thread().name)
        return respond(self, scope, body_file)

    monkeypatch.setattr(PortalASGIHandler, "_respond", spy)
    path = f"/api/v1/runs/{r.pk}/log-batch"

    status, body = await _post(
        path, mine, {"metrics": [{"key": "loss", "step": s, "value": 1 / (s + 1)} for s in range(5)]}
    )
    assert (status, body) == (200, {"metrics": 5, "params": 0, "tags": 0})
    assert await database_sync_to_async(MetricPoint.objects.filter(run_id=r.pk).count)() == 5

    status, body = await _post(path, mine, {"metrics": [{"key": "bad key!", "step": 1, "value": 1.0}]})
    assert status == 400 and "metrics" in body  # DRF's validation error shape, from the same view

    status, body = await _post(path, mine, b"{not json")
    assert status == 400 and "detail" in body

    status, _ = await _post(path, theirs, {"metrics": [{"key": "loss", "step": 9, "value": 0.1}]})
    assert status == 404  # strangers cannot tell the run exists
    status, _ = await _post(path, "ptk_nope_nope", {"metrics": [{"key": "loss", "step": 9, "value": 0.1}]})
    assert status == 401
    assert await database_sync_to_async(MetricPoint.objects.filter(run_id=r.pk).count)() == 5

    assert len(threads) == 5 and all(name.startswith("web") for name in threads)


async def _get(path: str, key: str) -> dict:
    """GET through the whole ASGI application; body parts may come without a `body` key (ASGI's
    default b"", which channels' HttpCommunicator does not accept)."""
    path, _, query = path.partition("?")
    headers = [(b"host", b"testserver"), (b"authorization", f"Token {key}".encode())]
    scope = {"type": "http", "http_version": "1.1", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "headers": headers, "scheme": "http", "server": ("testserver", 80),
             "client": ("127.0.0.1", 5000)}  # fmt: skip
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        chunk = await communicator.receive_output(10)
        body += chunk.get("body", b"")
        if not chunk.get("more_body", False):
            break
    return {"status": start["status"], "headers": start.get("headers", []), "body": body}


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_concurrent_requests_share_the_bounded_web_threads(owner, monkeypatch, settings):
    _, key = await database_sync_to_async(token_create)(user=owner, name="t", scopes=["read"], expires_days=1)
    threads = set()
    respond = PortalASGIHandler._respond

    def spy(self, scope, body_file):
        threads.add(threading.current_thread().ident)
        return respond(self, scope, body_file)

    monkeypatch.setattr(PortalASGIHandler, "_respond", spy)
    responses = await asyncio.gather(*(_get("/api/v1/me", key) for _ in range(40)))
    assert {r["status"] for r in responses} == {200}
    assert 1 <= len(threads) <= settings.PORTAL_WEB_THREADS  # not one new thread per request


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_synchronous_stream_is_read_on_the_thread_that_ran_the_view(auditor, monkeypatch):
    """The audit CSV export streams a lazily evaluated queryset: it must run on the view's thread
    (and its connection), then the connection is handed back with request_finished."""
    _, key = await database_sync_to_async(token_create)(user=auditor, name="t", scopes=["read"], expires_days=1)
    seen = {}
    rows = core_api_views.audit_csv_rows

    def spy(entries):
        seen["view"] = threading.current_thread().ident
        for row in rows(entries):
            seen["rows"] = threading.current_thread().ident
            yield row

    monkeypatch.setattr(core_api_views, "audit_csv_rows", spy)
    response = await _get("/api/v1/audit/?format=csv", key)
    assert response["status"] == 200 and response["body"].count(b"\n") >= 1
    assert {k.lower(): v for k, v in response["headers"]}[b"content-type"] == b"text/csv"
    assert seen["view"] == seen["rows"]
