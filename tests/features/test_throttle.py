"""The lean ASGI path applies DRF's per-user rate (UserRateThrottle) through Redis."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync

from apps.accounts.services import token_create
from apps.core import ratelimit
from apps.core.permissions import share
from apps.features import fastpath, online

URL = "/api/v1/features/online"
BODY = {"features": ["customer-stats:balance"], "entities": {"customer_id": [0, 1]}}


@pytest.fixture(autouse=True)
def clean_rate_state():
    def clean():
        c = online.client()
        for key in c.scan_iter(match=f"{ratelimit.RATE_PREFIX}*", count=1000):
            c.delete(key)
        ratelimit.reset_leases()

    clean()
    yield
    clean()


def rate(settings, value):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": value}}


def token(user):
    return token_create(user=user, name="fast", scopes=["features"], expires_days=1)[1]


def call(key, body=BODY):
    scope = {"type": "http", "path": URL, "method": "POST", "client": ("127.0.0.1", 5000),
             "headers": [(b"authorization", f"Token {key}".encode()), (b"content-type", b"application/json")]}  # fmt: skip
    messages = [{"type": "http.request", "body": json.dumps(body).encode()}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async_to_sync(fastpath.handle)(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), json.loads(sent[1]["body"])


def test_the_user_rate_applies_with_429_retry_after_and_detail(materialized, owner, settings):
    rate(settings, "3/min")
    key = token(owner)
    assert [call(key)[0] for _ in range(3)] == [200, 200, 200]
    status, headers, body = call(key)
    assert status == 429
    wait = int(headers[b"retry-after"])
    assert 1 <= wait <= 120
    assert body == {"detail": f"Request was throttled. Expected available in {wait} second{'s' if wait > 1 else ''}."}
    assert headers[b"content-type"] == b"application/json"


def test_refused_requests_do_not_count_and_another_user_is_not_affected(
    materialized, owner, collaborator, settings
):  # fmt: skip
    share(materialized, role="viewer", user=collaborator)
    rate(settings, "2/hour")
    mine, theirs = token(owner), token(collaborator)
    assert [call(mine)[0] for _ in range(5)] == [200, 200, 429, 429, 429]
    assert [call(theirs)[0] for _ in range(2)] == [200, 200]
    assert call(theirs)[0] == 429
    counters = {k.decode(): int(online.client().get(k)) for k in online.client().scan_iter(f"{ratelimit.RATE_PREFIX}*")}
    assert sorted(counters.values()) == [2, 2]  # refusals are not counted


def test_the_limit_holds_across_processes(materialized, owner, settings):
    """Each 'process' (a forgotten lease) leases a block; together they never pass the limit."""
    rate(settings, "200/hour")  # lease of 2 per round trip
    key = token(owner)
    ok = 0
    for _ in range(120):
        ratelimit.reset_leases()  # every call as if from a fresh worker process
        status = call(key)[0]
        ok += status == 200
        if status == 429:
            break
    assert ok == 100  # each process used 1 of its 2 leased requests: conservative, never over


def test_leased_requests_are_spent_without_redis_and_topped_up_after_the_response(materialized, owner, settings):
    rate(settings, "500/hour")  # lease of 5
    key = token(owner)
    assert call(key)[0] == 200
    counter = next(online.client().scan_iter(f"{ratelimit.RATE_PREFIX}*"))
    assert int(online.client().get(counter)) == 5
    assert [call(key)[0] for _ in range(2)] == [200] * 2  # 2 left of 5: no Redis call
    assert int(online.client().get(counter)) == 5
    assert call(key)[0] == 200  # 1 left: the next block is leased after this response
    assert int(online.client().get(counter)) == 10
    assert [call(key)[0] for _ in range(3)] == [200] * 3
    assert int(online.client().get(counter)) == 10


def test_a_top_up_stops_at_the_limit(materialized, owner, settings):
    rate(settings, "400/hour")  # lease of 4
    key = token(owner)
    statuses = [call(key)[0] for _ in range(405)]
    assert statuses.count(200) == 400 and statuses[400:] == [429] * 5


def test_no_limit_without_the_user_throttle(materialized, owner, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": [],
                               "DEFAULT_THROTTLE_RATES": {"user": "1/min"}}  # fmt: skip
    key = token(owner)
    assert [call(key)[0] for _ in range(3)] == [200, 200, 200]


def test_wait_estimate():
    # this window full: wait for its end, plus until its count fades enough
    assert ratelimit.wait_seconds(limit=10, period=60, frac=0.5, cur=10, prev=0) == 30 + 6
    # previous window's share must fade: 10 - 9 - 1 = 0 free -> wait until prev weight hits 0
    assert ratelimit.wait_seconds(limit=10, period=60, frac=0.5, cur=9, prev=4) == 30
