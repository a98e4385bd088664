import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.experiments import services
from portal.asgi import application
from tests.experiments.factories import experiment, points, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _connect(path, user):
    communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1:8000")])
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@database_sync_to_async
def _setup(owner):
    exp = experiment(owner)
    return exp, run(exp, owner)


async def test_run_and_experiment_sockets_receive_points_and_status(owner):
    exp, r = await _setup(owner)
    run_socket = await _connect(f"/ws/runs/{r.pk}/", owner)
    exp_socket = await _connect(f"/ws/experiments/{exp.pk}/", owner)
    assert (await run_socket.receive_json_from(timeout=3))["group"] == f"run.{r.pk}"
    assert (await exp_socket.receive_json_from(timeout=3))["group"] == f"experiment.{exp.pk}"

    await database_sync_to_async(services.run_log_batch)(
        run=r, actor=owner, metrics=[{"key": "loss", "step": 12, "value": 0.31}]
    )
    message = await run_socket.receive_json_from(timeout=3)
    assert message["type"] == "metric" and message["run"] == r.pk
    assert (message["key"], message["step"], message["value"]) == ("loss", 12, 0.31)
    assert message["ts"].endswith("Z")
    assert (await exp_socket.receive_json_from(timeout=3))["key"] == "loss"

    await database_sync_to_async(services.run_set_status)(run=r, actor=owner, progress=0.4)
    status = await run_socket.receive_json_from(timeout=3)
    assert status == {"type": "status", "run": r.pk, "status": "running", "progress": 0.4}
    assert (await exp_socket.receive_json_from(timeout=3))["type"] == "status"
    await run_socket.disconnect()
    await exp_socket.disconnect()


async def test_fast_trainer_is_coalesced(owner, settings):
    settings.EXPERIMENTS_LIVE_WINDOW_S = 0.3
    _, r = await _setup(owner)
    socket = await _connect(f"/ws/runs/{r.pk}/", owner)
    await socket.receive_json_from(timeout=3)
    log_batch = database_sync_to_async(services.run_log_batch)
    # a big batch becomes one `metrics` message, each key trimmed to 200 points (first and last kept)
    await log_batch(run=r, actor=owner, metrics=points("loss", 1000))
    message = await socket.receive_json_from(timeout=3)
    assert message["type"] == "metrics" and message["total"] == 1000
    steps = [p["step"] for p in message["points"]]
    assert len(steps) <= 200 and steps[0] == 0 and steps[-1] == 999
    # 30 single-point calls in quick succession arrive as a few merged messages, not 30
    for s in range(1000, 1030):
        await log_batch(run=r, actor=owner, metrics=[{"key": "loss", "step": s, "value": 0.1}])
    received, seen = 0, set()
    while len(seen) < 30:
        message = await socket.receive_json_from(timeout=3)
        received += 1
        if message["type"] == "metrics":
            seen.update(p["step"] for p in message["points"])
        else:
            seen.add(message["step"])
    assert seen == set(range(1000, 1030))
    assert received <= 10
    await socket.disconnect()


async def test_stranger_socket_closes_4403(owner, stranger):
    exp, r = await _setup(owner)
    for path in (f"/ws/runs/{r.pk}/", f"/ws/experiments/{exp.pk}/", "/ws/runs/999999/"):
        communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1:8000")])
        communicator.scope["user"] = stranger
        await communicator.connect()
        assert (await communicator.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4403}


async def test_run_socket_closes_4403_once_the_experiment_is_unshared(owner, collaborator, monkeypatch):
    from apps.core import realtime
    from apps.core.permissions import share, unshare

    exp, r = await _setup(owner)
    await database_sync_to_async(share)(exp, role="viewer", user=collaborator)
    socket = await _connect(f"/ws/runs/{r.pk}/", collaborator)
    assert (await socket.receive_json_from(timeout=3))["type"] == "subscribed"
    monkeypatch.setattr(realtime, "ACCESS_RECHECK_S", 0.0)
    await database_sync_to_async(unshare)(exp, user=collaborator)
    await database_sync_to_async(services.run_log_batch)(
        run=r, actor=owner, metrics=[{"key": "loss", "step": 1, "value": 0.5}]
    )
    assert (await socket.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4403}
