"""Bounded connections (issue #18): 2,000 requests from 8 concurrent clients through a real uvicorn
open no more PostgreSQL sessions, SQLite connections or Redis connections than the configured
pools, and leave none behind."""

from __future__ import annotations

import http.client
import os
import threading
import time

import psutil
import pytest
import redis as redis_lib
from django.conf import settings
from django.db import connection

from apps.accounts.services import token_create
from tests.conftest import _stop
from tests.servers import start_server

POOL = 4  # web threads, database pool and Redis pool of the server under test: fewer than the clients
CLIENTS = 8
REQUESTS = 2000
PATHS = ("/api/v1/me", "/api/v1/models/", "/api/v1/experiments/")


def _start_server(tmp_path):
    return start_server(tmp_path, PORTAL_WEB_THREADS=str(POOL), DATABASE_POOL_SIZE=str(POOL), REDIS_POOL_SIZE=str(POOL))


def _drive(port: int, key: str, sample) -> list[int]:
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(n):
            conn.request("GET", PATHS[i % len(PATHS)], headers={"Authorization": f"Token {key}"})
            response = conn.getresponse()
            response.read()
            with lock:
                statuses.append(response.status)
            if i % 50 == 0:
                sample()
        conn.close()

    threads = [threading.Thread(target=client, args=(REQUESTS // CLIENTS,)) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def _local_ports_to(pid: int, port: int) -> set[int]:
    """The local ports of `pid`'s TCP connections to `port`: one per connection it holds."""
    return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.raddr and c.raddr.port == port}


def _sqlite_connections(pid: int) -> int:
    name = os.path.realpath(str(connection.settings_dict["NAME"]))
    return sum(1 for f in psutil.Process(pid).open_files() if os.path.realpath(f.path) == name)


def _pg_client_ports() -> set[int]:
    """Client ports of every backend on the test database now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT client_port FROM pg_stat_activity WHERE datname = current_database()")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_two_thousand_requests_stay_within_the_pools(owner, tmp_path):
    """Connections are told apart by the server's own sockets (other test servers and workers of
    the session share the databases): at every sample the server holds at most its pools, over the
    run it opens no more than that (each connection has its own local port), and once it is gone
    PostgreSQL has no backend left for any of them."""
    _, key = token_create(user=owner, name="load", scopes=["read"], expires_days=1)
    redis_port = redis_lib.Redis.from_url(settings.REDIS_URL).connection_pool.connection_kwargs["port"]
    postgres = connection.vendor == "postgresql"
    pg_port = int(connection.settings_dict["PORT"] or 5432) if postgres else None
    process, port = _start_server(tmp_path)
    server = psutil.Process(process.pid)
    peak = {"redis": 0, "db": 0}
    seen = {"redis": set(), "db": set()}

    def sample() -> None:
        pids = [server.pid, *(c.pid for c in server.children(recursive=True))]
        redis_now = set().union(*(_local_ports_to(pid, redis_port) for pid in pids))
        peak["redis"], seen["redis"] = max(peak["redis"], len(redis_now)), seen["redis"] | redis_now
        if postgres:
            db_now = set().union(*(_local_ports_to(pid, pg_port) for pid in pids))
            peak["db"], seen["db"] = max(peak["db"], len(db_now)), seen["db"] | db_now
        else:
            peak["db"] = max(peak["db"], sum(_sqlite_connections(pid) for pid in pids))

    try:
        statuses = _drive(port, key, sample)
        sample()
    finally:
        _stop(process)
    assert len(statuses) == REQUESTS and set(statuses) == {200}, sorted(set(statuses))
    # The server's own connections never exceed its pools: the thread-side pool (cache, sessions,
    # throttle, caller cache, online store), plus one for the channel layer on the event loop
    # (the start-up health check used it) and the caller cache's listener subscription ...
    assert peak["redis"] <= POOL + 2, peak
    assert peak["db"] <= POOL, peak
    # ... nor does the number it opened over the whole run (no new connection per request).
    assert len(seen["redis"]) <= POOL + 2, seen
    if postgres:
        assert len(seen["db"]) <= POOL, seen
        deadline = time.monotonic() + 10  # a backend exits just after its client closes the socket
        while (left := seen["db"] & _pg_client_ports()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"backends left behind for client ports {sorted(left)}"
