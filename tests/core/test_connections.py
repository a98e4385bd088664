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


def _sockets_to(pid: int, port: int) -> int:
    return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp") if c.raddr and c.raddr.port == port)


def _sqlite_connections(pid: int) -> int:
    name = os.path.realpath(str(connection.settings_dict["NAME"]))
    return sum(1 for f in psutil.Process(pid).open_files() if os.path.realpath(f.path) == name)


def _pg_backends() -> tuple[int, int]:
    """(sessions opened so far on the test database, backends open now besides this process's own)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        opened = cursor.fetchone()[0]
        cursor.execute("SELECT client_port FROM pg_stat_activity WHERE datname = current_database()")
        ports = {row[0] for row in cursor.fetchall()}
    mine = {c.laddr.port for c in psutil.Process().net_connections(kind="tcp") if c.laddr}  # this test's own pool
    return opened, len(ports - mine)


@pytest.mark.django_db(transaction=True)
def test_two_thousand_requests_stay_within_the_pools(owner, tmp_path):
    _, key = token_create(user=owner, name="load", scopes=["read"], expires_days=1)
    redis = redis_lib.Redis.from_url(settings.REDIS_URL)
    redis_port = redis.connection_pool.connection_kwargs["port"]
    postgres = connection.vendor == "postgresql"
    if postgres:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
        opened_before, _ = _pg_backends()
    received_before = redis.info("stats")["total_connections_received"]
    process, port = _start_server(tmp_path)
    server = psutil.Process(process.pid)
    peak = {"redis": 0, "db": 0}

    def sample() -> None:
        pids = [server.pid, *(c.pid for c in server.children(recursive=True))]
        peak["redis"] = max(peak["redis"], sum(_sockets_to(pid, redis_port) for pid in pids))
        if postgres:
            peak["db"] = max(
                peak["db"], sum(_sockets_to(pid, int(connection.settings_dict["PORT"] or 5432)) for pid in pids)
            )
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
    # (the start-up health check used it) and the caller cache's listener subscription.
    assert peak["redis"] <= POOL + 2, peak
    assert peak["db"] <= POOL, peak
    # ... nor does the number it opened over the whole run (no new connection per request); the
    # start-up checks (health, migrations) may add one of each.
    assert redis.info("stats")["total_connections_received"] - received_before <= POOL + 2
    if postgres:
        deadline = time.monotonic() + 10  # a backend exits just after its client closes the socket
        while True:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")
            opened_after, open_now = _pg_backends()
            if open_now == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert opened_after - opened_before <= POOL + 1
        assert open_now == 0  # nothing left behind once the server is gone
