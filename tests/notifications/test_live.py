"""A notification reaches the recipient's open socket (the bell) after commit, and nobody else's."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from apps.core.routing import websocket_urlpatterns
from apps.notifications import services

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _socket(user):
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/notifications/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "subscribed"
    return communicator


async def test_notify_pushes_to_the_recipients_socket_only(owner, stranger):
    mine, theirs = await _socket(owner), await _socket(stranger)
    rows = await database_sync_to_async(services.notify)(
        recipients=[owner], kind="promotion.requested", title="Decide on credit-risk v2", url="/approvals/", email=False
    )
    message = await mine.receive_json_from(timeout=3)
    assert message["type"] == "notification" and message["id"] == rows[0].pk
    assert message["title"] == "Decide on credit-risk v2" and message["unread"] == 1
    assert await theirs.receive_nothing(timeout=0.5)
    await database_sync_to_async(services.notifications_read_all)(actor=owner)
    assert await mine.receive_json_from(timeout=3) == {"type": "unread", "count": 0}
    await mine.disconnect()
    await theirs.disconnect()
