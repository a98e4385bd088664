"""The lean Redis connection behind online reads: script reload, reconnect, errors."""

from __future__ import annotations

import threading

import pytest
import redis
from django.conf import settings

from apps.features.rawredis import RawConnection, ScriptRunner, supported

ECHO = "return {KEYS[1], ARGV[1]}"


@pytest.fixture
def plain():
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


def test_script_runs_and_reloads_after_a_flush(plain):
    run = ScriptRunner(settings.REDIS_URL, ECHO)
    assert run(["k"], ["v"]) == [b"k", b"v"]
    plain.script_flush()
    assert run(["k2"], [3]) == [b"k2", b"3"]  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA


def test_reconnects_once_when_the_server_drops_the_connection(plain):
    run = ScriptRunner(settings.REDIS_URL, ECHO)
    run(["a"], ["1"])
    conn_id = run.local.conn.call("CLIENT", "ID")
    plain.execute_command("CLIENT", "KILL", "ID", conn_id)
    assert run(["b"], ["2"]) == [b"b", b"2"]
    assert run.local.conn.call("CLIENT", "ID") != conn_id


def test_script_errors_are_raised_not_swallowed():
    run = ScriptRunner(settings.REDIS_URL, "return redis.call('INCR', KEYS[1])")
    conn = RawConnection(settings.REDIS_URL)
    try:
        conn.call("SET", "portal:test:rawredis", "not a number")
        with pytest.raises(redis.ResponseError):
            run(["portal:test:rawredis"], [])
    finally:
        conn.call("DEL", "portal:test:rawredis")
        conn.close()


def test_each_thread_gets_its_own_connection():
    run = ScriptRunner(settings.REDIS_URL, ECHO)
    ids = []

    def work():
        run(["x"], ["y"])
        ids.append(run.local.conn.call("CLIENT", "ID"))

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
