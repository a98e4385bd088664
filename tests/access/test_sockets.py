"""WebSockets: every route, every persona (shared/API.md: 4401 not signed in, 4403 not viewable).

Sockets are opened with channels' WebsocketCommunicator against the portal's ASGI application,
from a sync test through `async_to_sync`: the consumers' database calls then run on this thread,
inside the class's transaction, so the objects need not be committed (no flush per test)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction

from tests.access import objects
from tests.access.matrix import AccessMatrix, World

ACCEPT = "subscribed"
ORIGIN = (b"origin", b"http://127.0.0.1:8000")
VIEWABLE = dict(owner=ACCEPT, viewer=ACCEPT, editor=ACCEPT, team=ACCEPT, admin=ACCEPT, stranger=4403, anon=4401)
# a token without `read` is a known caller refused the socket: 4403, as the API answers 403
VIEWABLE_BY_TOKEN = dict(VIEWABLE, no_scope_token=4403)


def everything(owner, team) -> dict:
    made = {**objects.experiments(owner, team)}
    features, training = objects.features(owner, team), objects.training(owner, team)
    share = made["share"] + features.pop("share") + training.pop("share")
    return {**made, **features, **training, "share": share}


async def _answer(application, path: str, headers: list) -> object:
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    try:
        if not connected:
            return code
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return output.get("code")
        return json.loads(output["text"]).get("type")
    finally:
        await communicator.disconnect()


def headers_for(world: World, persona: str) -> list:
    if persona == "anon":
        return [ORIGIN]
    if persona == "no_scope_token":
        return [(b"authorization", f"Token {world.tokens[(world.people.owner.pk, ('write',))]}".encode())]
    cookie = f"{settings.SESSION_COOKIE_NAME}={world.cookies[persona]}"
    return [ORIGIN, (b"cookie", cookie.encode())]


class TestSocketAccess(AccessMatrix):
    """Rows are ("WS", path); the answer is ACCEPT (the `subscribed` message) or a close code."""

    make = staticmethod(everything)
    rows = {
        ("WS", "/ws/runs/{run}/"): VIEWABLE_BY_TOKEN,
        ("WS", "/ws/experiments/{experiment}/"): VIEWABLE_BY_TOKEN,
        ("WS", "/ws/training/jobs/{job}/"): VIEWABLE_BY_TOKEN,
        ("WS", "/ws/feature-views/{view_pk}/"): VIEWABLE_BY_TOKEN,
        ("WS", "/ws/notifications/"): dict(VIEWABLE_BY_TOKEN, stranger=ACCEPT),  # one's own notifications
    }

    @pytest.fixture(autouse=True)
    def _keep_test_transaction(self, monkeypatch):
        """channels closes 'old' connections around each database call; here that connection holds
        the test transaction (Django's test client disconnects the same handler for requests)."""
        monkeypatch.setattr("channels.db.close_old_connections", lambda: None)

    @pytest.mark.django_db
    def test_row(self, world, row):
        from portal.asgi import application

        _, path = row
        url = path.format(**world.params)
        wrong = []
        for persona, expected in self.rows[row].items():
            with transaction.atomic():
                answer = async_to_sync(_answer)(application, url, headers_for(world, persona))
                transaction.set_rollback(True)
            if answer != expected:
                wrong.append(f"  {persona}: expected {expected}, got {answer}")
        assert not wrong, f"WS {path}\n" + "\n".join(wrong)
