"""The lean Redis connection behind online reads: pipelining, reconnect, errors, threads."""

from __future__ import annotations

import threading

import pytest
import redis
from django.conf import settings

from apps.features import online
from apps.features.rawredis import RawConnection, ThreadConnections, supported


@pytest.fixture
def plain():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def test_pipeline_answers_in_order_like_the_read_script(plain):
    plain.hset("portal:fs:test:a", mapping={"x": "1.5", "__ts": "10"})
    plain.set(online.GEN_KEY, "7")
    try:
        groups = [(["portal:fs:test:a", "portal:fs:test:missing"], ["x", "y", "__ts"])]
        keys, argv = online.read_args(groups)
        by_script = plain.register_script(online.READ_LUA)(keys=keys, args=argv)
        assert online.read_rows(groups) == by_script == [b"7", [b"1.5", None, b"10"], [None, None, None]]
    finally:
        plain.delete("portal:fs:test:a", online.GEN_KEY)


def test_reconnects_once_when_the_server_drops_the_connection(plain):
    conns = ThreadConnections(settings.REDIS_URL)
    conn_id = conns.pipeline([("CLIENT", "ID")])[0]
    plain.execute_command("CLIENT", "KILL", "ID", conn_id)
    assert conns.pipeline([("PING",), ("CLIENT", "ID")])[0] == b"PONG"
    assert conns.local.conn.call("CLIENT", "ID") != conn_id


def test_command_errors_are_raised_not_swallowed():
    conn = RawConnection(settings.REDIS_URL)
    try:
        conn.call("SET", "portal:test:rawredis", "not a number")
        with pytest.raises(redis.ResponseError):
            conn.pipeline([("GET", "portal:test:rawredis"), ("INCR", "portal:test:rawredis")])
        assert conn.call("GET", "portal:test:rawredis") == b"not a number"  # the stream stayed in sync
    finally:
        conn.call("DEL", "portal:test:rawredis")
        conn.close()


def test_each_thread_gets_its_own_connection():
    conns = ThreadConnections(settings.REDIS_URL)
    ids = []

    def work():
        ids.append(conns.pipeline([("CLIENT", "ID")])[0])

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 3


def test_only_plain_urls_use_the_raw_path():
    assert supported("redis://127.0.0.1:6379/0")
    assert supported("unix:///tmp/redis.sock")
    assert not supported("rediss://cache.example:6380/0")  # TLS goes through redis-py
