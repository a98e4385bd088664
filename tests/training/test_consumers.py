"""WebSocket /ws/training/jobs/{id}/: live state/progress/ETA for viewers, 4403 for strangers."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.training import services
from apps.training.models import TrainingJob
from portal.asgi import application
from tests.training.conftest import transactional_db_mark

pytestmark = [transactional_db_mark(), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def _nothing_queued(sent_tasks):
    """Only the job row matters here: a real worker (alive if an earlier test started it) must not
    train these jobs and write while the database is flushed after the test."""


async def _socket(path, user):
    communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1:8000")])
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@database_sync_to_async
def _job(owner):
    return services.job_launch(actor=owner, template="digits-cnn")


@database_sync_to_async
def _progress(job):
    TrainingJob.objects.filter(pk=job.pk).update(progress=0.5, eta_s=12.0, epochs_completed=5, state="running")
    job.refresh_from_db()
    services.job_publish(job)


async def test_owner_gets_progress_and_eta(owner):
    job = await _job(owner)
    socket = await _socket(f"/ws/training/jobs/{job.pk}/", owner)
    assert (await socket.receive_json_from(timeout=3))["group"] == f"trainingjob.{job.pk}"
    await _progress(job)
    message = await socket.receive_json_from(timeout=3)
    assert message["type"] == "job" and message["progress"] == 0.5 and message["eta_s"] == 12.0
    assert message["state"] == "running" and message["epochs_completed"] == 5
    await socket.disconnect()


async def test_stranger_is_closed_with_4403(owner, stranger):
    job = await _job(owner)
    socket = await _socket(f"/ws/training/jobs/{job.pk}/", stranger)
    assert (await socket.receive_output(timeout=3))["code"] == 4403
