"""PortalASGIHandler: hot POST paths run the whole sync handler chain on a worker thread."""

import json
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from django.test import RequestFactory

from apps.accounts.services import token_create
from apps.core.asgi_handler import PortalASGIHandler
from apps.experiments.models import MetricPoint
from portal.asgi import application, django_asgi_app
from tests.experiments.factories import experiment, run


def test_only_post_to_the_configured_paths_is_threaded():
    handler = django_asgi_app
    assert isinstance(handler, PortalASGIHandler)
    factory = RequestFactory()
    assert handler.is_threaded(factory.post("/api/v1/runs/12/log-batch"))
    assert not handler.is_threaded(factory.get("/api/v1/runs/12/log-batch"))
    assert not handler.is_threaded(factory.post("/api/v1/runs/12/log-batch/extra"))
    assert not handler.is_threaded(factory.post("/api/v1/runs/"))


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
async def test_log_batch_is_served_on_a_worker_thread_with_the_full_api_behaviour(owner, stranger, monkeypatch):
    r, mine, theirs = await _setup(owner, stranger)
    threads = []
    respond = PortalASGIHandler._respond_in_thread

    def spy(self, request):
        threads.append(threading.current_thread().name)
        return respond(self, request)

    monkeypatch.setattr(PortalASGIHandler, "_respond_in_thread", spy)
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

    assert len(threads) == 5 and all(name != threading.main_thread().name for name in threads)
