import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import path

from apps.core.realtime import ObjectConsumer, group_name, send_now_async
from portal.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class NeverVisibleConsumer(ObjectConsumer):
    group_kind = "secret"

    def load_object(self, user, pk):
        return None


async def _connect(app, path_, user=None):
    communicator = WebsocketCommunicator(app, path_, headers=[(b"origin", b"http://127.0.0.1:8000")])
    if user is not None:
        communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    return communicator, connected


async def test_unauthenticated_socket_closes_4401():
    communicator, connected = await _connect(application, "/ws/notifications/")
    assert connected
    message = await communicator.receive_output(timeout=2)
    assert message == {"type": "websocket.close", "code": 4401}


async def test_forbidden_object_closes_4403(stranger):
    from channels.routing import URLRouter

    app = URLRouter([path("ws/secret/<int:pk>/", NeverVisibleConsumer.as_asgi())])
    communicator = WebsocketCommunicator(app, "/ws/secret/1/")
    communicator.scope["user"] = stranger
    await communicator.connect()
    assert (await communicator.receive_output(timeout=2)) == {"type": "websocket.close", "code": 4403}


async def test_broadcast_reaches_the_users_socket_and_bad_messages_get_errors(owner):
    from channels.routing import URLRouter

    from apps.core.routing import websocket_urlpatterns

    app = URLRouter(websocket_urlpatterns)
    communicator = WebsocketCommunicator(app, "/ws/notifications/")
    communicator.scope["user"] = owner
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "subscribed"
    await send_now_async(group_name("user", owner.pk), {"type": "notification", "kind": "hello"})
    assert (await communicator.receive_json_from(timeout=3)) == {"type": "notification", "kind": "hello"}
    await communicator.send_to(text_data="not json")
    assert (await communicator.receive_json_from(timeout=2))["type"] == "error"
    await communicator.send_json_to({"type": "subscribe", "group": "user.1"})
    assert (await communicator.receive_json_from(timeout=2))["type"] == "error"
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(timeout=2)) == {"type": "pong"}
    await communicator.disconnect()


async def test_token_auth_on_handshake(owner):
    from apps.accounts.services import token_create

    _, key = await database_sync_to_async(token_create)(user=owner, name="ws", scopes=["read"], expires_days=1)
    communicator = WebsocketCommunicator(
        application, "/ws/notifications/", headers=[(b"authorization", f"Token {key}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "subscribed"
    await communicator.disconnect()


async def test_call_later_runs_on_the_one_sender_thread_and_flush_waits_for_it():
    import threading

    from apps.core import realtime

    seen: list[str] = []
    realtime.call_later(0.05, lambda: seen.append(threading.current_thread().name))
    realtime.call_later(0, lambda: 1 / 0)  # a failing callback is logged; the sender goes on
    assert realtime.flush_sends(3)
    assert seen == ["realtime-sender"]
    assert [t.name for t in threading.enumerate()].count("realtime-sender") == 1


async def test_socket_closes_4403_once_access_is_revoked(owner, collaborator, monkeypatch):
    from channels.routing import URLRouter

    from apps.core import realtime

    allowed = {"yes": True}

    class RevocableConsumer(ObjectConsumer):
        group_kind = "revocable"

        def load_object(self, user, pk):
            return collaborator if allowed["yes"] else None

    app = URLRouter([path("ws/revocable/<int:pk>/", RevocableConsumer.as_asgi())])
    communicator = WebsocketCommunicator(app, "/ws/revocable/1/")
    communicator.scope["user"] = collaborator
    await communicator.connect()
    group = (await communicator.receive_json_from(timeout=2))["group"]
    monkeypatch.setattr(realtime, "ACCESS_RECHECK_S", 0.0)
    await send_now_async(group, {"type": "hello"})
    assert (await communicator.receive_json_from(timeout=3)) == {"type": "hello"}
    allowed["yes"] = False  # unshared while the socket is open
    await send_now_async(group, {"type": "secret"})
    assert (await communicator.receive_output(timeout=3)) == {"type": "websocket.close", "code": 4403}


# --- Revocation reaches open sockets (issue 12) ------------------------------------------------
CLOSED_4403 = {"type": "websocket.close", "code": 4403}


def _shared_run(owner, viewer, *, team=None):
    """A run in an experiment of `owner`, shared as viewer with `viewer` (or with `team`)."""
    from apps.core.sharing import share_object
    from apps.experiments import services

    experiment = services.experiment_create(actor=owner, name="revocation")
    run = services.run_create(experiment=experiment, actor=owner, name="r1")
    share_object(obj=experiment, actor=owner, role="viewer", user=None if team else viewer, team=team)
    return experiment, run


async def _run_socket(user, run, scopes=("read",)):
    """A token socket on the run, as a script opens it; returns (communicator, token)."""
    from apps.accounts.services import token_create

    token, key = await database_sync_to_async(token_create)(user=user, name="ws", scopes=list(scopes), expires_days=1)
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/", headers=[(b"authorization", f"Token {key}".encode())]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "subscribed"
    return communicator, token


async def test_unsharing_closes_an_open_run_socket_within_a_second(owner, collaborator):
    from apps.core.sharing import unshare_object

    experiment, run = await database_sync_to_async(_shared_run)(owner, collaborator)
    communicator, _ = await _run_socket(collaborator, run)
    await database_sync_to_async(unshare_object)(obj=experiment, actor=owner, user=collaborator)
    assert (await communicator.receive_output(timeout=1)) == CLOSED_4403


async def test_revoking_the_token_closes_the_socket_it_opened_within_a_second(owner, collaborator):
    from apps.accounts.services import token_revoke

    _, run = await database_sync_to_async(_shared_run)(owner, collaborator)
    communicator, token = await _run_socket(collaborator, run)
    other, _ = await _run_socket(collaborator, run)  # another token of the same user stays open
    await database_sync_to_async(token_revoke)(token=token, actor=collaborator)
    assert (await communicator.receive_output(timeout=1)) == CLOSED_4403
    await send_now_async(group_name("run", run.pk), {"type": "metrics"})
    assert (await other.receive_json_from(timeout=2)) == {"type": "metrics"}
    await other.disconnect()


async def test_leaving_the_team_closes_the_members_socket_within_a_second(owner, collaborator, team):
    from apps.accounts.services import team_remove_member

    _, run = await database_sync_to_async(_shared_run)(owner, collaborator, team=team)
    communicator, _ = await _run_socket(collaborator, run)
    await database_sync_to_async(team_remove_member)(team=team, user=collaborator)
    assert (await communicator.receive_output(timeout=1)) == CLOSED_4403


async def test_deactivating_a_user_closes_their_sockets_within_a_second(owner, collaborator):
    _, run = await database_sync_to_async(_shared_run)(owner, collaborator)
    communicator, _ = await _run_socket(collaborator, run)

    def deactivate():
        collaborator.is_active = False
        collaborator.save()

    await database_sync_to_async(deactivate)()
    assert (await communicator.receive_output(timeout=1)) == CLOSED_4403


async def test_a_socket_rechecks_on_a_timer_even_when_nothing_is_sent(owner, collaborator, monkeypatch):
    from apps.core import realtime
    from apps.core.permissions import unshare

    monkeypatch.setattr(realtime, "ACCESS_BACKSTOP_S", 0.2)
    experiment, run = await database_sync_to_async(_shared_run)(owner, collaborator)
    communicator, _ = await _run_socket(collaborator, run)
    await database_sync_to_async(unshare)(experiment, user=collaborator)  # low level: no event sent
    assert (await communicator.receive_output(timeout=2)) == CLOSED_4403


async def test_downgrading_a_share_keeps_a_viewers_socket_open(owner, collaborator):
    from apps.core.sharing import share_object

    experiment, run = await database_sync_to_async(_shared_run)(owner, collaborator)
    communicator, _ = await _run_socket(collaborator, run)
    await database_sync_to_async(share_object)(obj=experiment, actor=owner, role="viewer", user=collaborator)
    await send_now_async(group_name("run", run.pk), {"type": "metrics"})
    assert (await communicator.receive_json_from(timeout=2)) == {"type": "metrics"}
    await communicator.disconnect()


# --- Session sockets: only the portal's own origin -----------------------------------------------
async def _handshake(origin: bytes, host: bytes | None = b"127.0.0.1:8123"):
    headers = [(b"origin", origin)] + ([(b"host", host)] if host else [])
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


@pytest.mark.parametrize(
    "origin", [b"http://localhost:3000", b"http://127.0.0.1:9999", b"https://127.0.0.1:8123", b"http://evil.example"]
)
async def test_session_socket_from_another_origin_is_refused(origin):
    communicator, connected = await _handshake(origin)
    assert not connected
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (b"http://127.0.0.1:8123", b"127.0.0.1:8123"),  # the server's own origin, any port it runs on
        (b"http://127.0.0.1:8000", None),  # PORTAL_BASE_URL
        (b"https://portal.example.com", b"internal:8000"),  # CSRF_TRUSTED_ORIGINS
    ],
)
async def test_session_socket_from_the_portals_own_origin_is_accepted(origin, host, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.com"]
    communicator, connected = await _handshake(origin, host)
    assert connected  # then closed 4401: nobody is signed in
    assert (await communicator.receive_output(timeout=2)) == {"type": "websocket.close", "code": 4401}


async def test_a_lost_channel_layer_closes_the_socket_with_one_log_line(owner, monkeypatch, caplog):
    from channels.layers import get_channel_layer
    from channels.routing import URLRouter
    from redis.exceptions import TimeoutError as RedisTimeout

    from apps.core.routing import websocket_urlpatterns

    async def timeout(*args, **kwargs):
        raise RedisTimeout("Timeout reading from socket")

    monkeypatch.setattr(type(get_channel_layer()), "group_add", timeout)
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/notifications/")
    communicator.scope["user"] = owner
    await communicator.connect()
    await communicator.wait(timeout=3)  # the consumer ended on its own, without raising
    messages = []
    while not communicator.output_queue.empty():
        messages.append(communicator.output_queue.get_nowait())
    assert {"type": "websocket.close", "code": 1011} in messages, messages
    lines = [r for r in caplog.records if "channel layer (Redis) failed" in r.getMessage()]
    assert len(lines) == 1 and not lines[0].exc_info
