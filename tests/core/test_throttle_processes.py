"""The per-user API rate holds across two web processes (issue #18): the limit is shared through
Redis, the answers past it are DRF's 429 with Retry-After."""

from __future__ import annotations

import http.client
import json

import pytest

from apps.accounts.services import token_create
from apps.core import ratelimit
from apps.core.redis_pool import redis_client
from tests.servers import start_server, stop

LIMIT = 12


def _get(port: int, key: str, path: str = "/api/v1/me") -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Token {key}"})
    response = conn.getresponse()
    body = json.loads(response.read() or b"null")
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


@pytest.fixture
def clean_rates():
    def clean():
        client = redis_client()
        for key in client.scan_iter(match=f"{ratelimit.RATE_PREFIX}*", count=1000):
            client.delete(key)

    clean()
    yield
    clean()


@pytest.mark.django_db(transaction=True)
def test_the_limit_is_shared_by_two_web_processes(owner, stranger, tmp_path, clean_rates):
    _, key = token_create(user=owner, name="rate", scopes=["read"], expires_days=1)
    _, other = token_create(user=stranger, name="rate", scopes=["read"], expires_days=1)
    servers = [start_server(tmp_path, API_THROTTLE_RATE=f"{LIMIT}/min") for _ in range(2)]
    try:
        ports = [port for _, port in servers]
        answers = [_get(ports[i % 2], key) for i in range(LIMIT + 6)]  # alternate between the processes
        statuses = [status for status, _, _ in answers]
        assert statuses == [200] * LIMIT + [429] * 6, statuses
        status, headers, body = answers[-1]
        wait = int(headers["retry-after"])
        assert 1 <= wait <= 120
        assert body["detail"] == ratelimit.throttled_detail(wait)
        # another user has a rate of their own
        assert _get(ports[0], other)[0] == 200
        assert _get(ports[1], other)[0] == 200
    finally:
        for process, _ in servers:
            stop(process)


def test_the_rate_is_read_from_drf_settings(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "7/hour"}}
    assert ratelimit.rate() == ("7/hour", 7, 3600)
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}
    assert ratelimit.rate() is None
