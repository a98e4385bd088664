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
