"""A lean synchronous Redis connection for the online store's hot read (one pipelined write).

redis-py spends about 100 us of Python per command (pool checkout, observability hooks, parser
plumbing), which dominated an in-process online read. This keeps one raw socket per thread,
packs and parses with hiredis (a redis-py dependency here) and reconnects once on a broken
connection. Only plain `redis://` and `unix://` URLs use it (`supported`); TLS and anything
unusual stay on redis-py.
"""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import unquote, urlparse

import hiredis
import redis

TIMEOUT_S = 5.0


class RawConnection:
    """One socket, one hiredis reader; `call` sends a command and returns its reply."""

    def __init__(self, url: str):
        self.url = url
        self.pid = os.getpid()
        parts = urlparse(url)
        self.sock = _open_socket(parts)
        self.reader = hiredis.Reader(replyError=redis.ResponseError)
        if parts.password:
            user = [unquote(parts.username)] if parts.username else []
            self.call("AUTH", *user, unquote(parts.password))
        db = (parts.path or "/").strip("/") or "0"
        if db != "0":
            self.call("SELECT", db)

    def call(self, *args):
        self.sock.sendall(hiredis.pack_command(args))
        reader, recv = self.reader, self.sock.recv
        while True:
            reply = reader.gets()
            if reply is not False:
                if isinstance(reply, redis.ResponseError):
                    raise reply
                return reply
            chunk = recv(1 << 16)
            if not chunk:
                raise ConnectionError("Redis closed the connection")
            reader.feed(chunk)

    def pipeline(self, commands: list[tuple]) -> list:
        """Send every command in one write and read their replies in order (no MULTI)."""
        self.sock.sendall(b"".join(hiredis.pack_command(c) for c in commands))
        reader, recv, out = self.reader, self.sock.recv, []
        while len(out) < len(commands):
            reply = reader.gets()
            if reply is False:
                chunk = recv(1 << 16)
                if not chunk:
                    raise ConnectionError("Redis closed the connection")
                reader.feed(chunk)
                continue
            out.append(reply)
        for reply in out:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _open_socket(parts) -> socket.socket:
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT_S)
        sock.connect(parts.path)
        return sock
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def supported(url: str) -> bool:
    return urlparse(url).scheme in ("redis", "unix")


class ThreadConnections:
    """One raw connection per thread (and process); a call that hits a broken one reconnects once."""

    def __init__(self, url: str):
        self.url = url
        self.local = threading.local()

    def _connection(self) -> RawConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.pid != os.getpid():  # never share a socket with a forked parent
            conn = self.local.conn = RawConnection(self.url)
        return conn

    def run(self, fn):
        """`fn(connection)`, retried once on a fresh connection after a connection error."""
        for attempt in (0, 1):
            conn = self._connection()
            try:
                return fn(conn)
            except (OSError, ConnectionError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def pipeline(self, commands: list[tuple]) -> list:
        return self.run(lambda conn: conn.pipeline(commands))
