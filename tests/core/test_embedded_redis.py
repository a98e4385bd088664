"""The embedded Redis keeps an append-only file under the var directory: a hard kill loses nothing
older than a second (queued jobs, leases), so a restart finds what it held."""

from __future__ import annotations

import os
import signal
import time

import redis

from apps.core.embedded_redis import free_port, start_redis


def test_embedded_redis_keeps_what_it_held_across_a_kill(tmp_path):
    port = free_port()
    data = tmp_path / "redis"
    first = start_redis(port=port, data_dir=data, log_file=tmp_path / "redis.log")
    try:
        client = redis.Redis(port=port)
        client.rpush("cpu", b"queued-job-message")
        client.set("lease", b"held")
        time.sleep(1.5)  # appendfsync everysec
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    assert any(p.name.startswith("appendonly") for p in data.iterdir())
    second = start_redis(port=port, data_dir=data, log_file=tmp_path / "redis.log")
    try:
        client = redis.Redis(port=port)
        assert client.lrange("cpu", 0, -1) == [b"queued-job-message"] and client.get("lease") == b"held"
    finally:
        second.terminate()
        second.wait(10)
