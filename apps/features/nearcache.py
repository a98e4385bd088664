"""A per-process near cache of online-store rows, invalidated by Redis (CLIENT TRACKING, BCAST).

Redis tells a subscriber connection about every write to a key under `portal:fs:`; the cache
drops that key. A read that raced with a write is never stored (the invalidation epoch moved
while it was in flight), local writes evict synchronously (read-your-writes), and losing the
invalidation connection empties the cache and bypasses it until tracking is back. Works with
Redis 6+ (RESP2 redirect mode); the Redis 7.4+ client-side cache of redis-py is not needed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import redis
from django.conf import settings

from apps.features import online

log = logging.getLogger(__name__)
MAX_KEYS = 200_000


class NearCache:
    def __init__(self, url: str):
        self.url = url
        self.pid = os.getpid()  # a forked child must not trust its parent's (dead) listener
        self.rows: dict[str, dict[tuple, list]] = {}
        self.epoch = 0
        self.ready = False
        self.lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._listen, name="features-nearcache", daemon=True)
        self._thread.start()

    # --- invalidation ------------------------------------------------------------------------
    def _listen(self) -> None:
        while not self._stop:
            try:
                self._track()
            except Exception as exc:  # connection lost: forget everything, bypass, retry
                log.warning("feature near cache lost its invalidation connection (%s); retrying", exc)
            self._reset(ready=False)
            time.sleep(1)

    def _track(self) -> None:
        """Subscribe a raw connection to invalidations (redis-py's PubSub drops these messages)."""
        kwargs = redis.ConnectionPool.from_url(self.url).connection_kwargs
        sock = socket.create_connection((kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)), timeout=10)
        stream = sock.makefile("rb")
        tracker = redis.Redis.from_url(self.url, single_connection_client=True)
        try:
            if kwargs.get("password"):
                _send(sock, "AUTH", *([kwargs["username"]] if kwargs.get("username") else []), kwargs["password"])
                _read(stream)
            _send(sock, "CLIENT", "ID")
            sub_id = _read(stream)
            _send(sock, "SUBSCRIBE", "__redis__:invalidate")
            _read(stream)
            tracker.execute_command("CLIENT", "TRACKING", "ON", "REDIRECT", sub_id, "BCAST", "PREFIX", online.PREFIX)
            self._reset(ready=True)
            sock.settimeout(30)
            while not self._stop:
                try:
                    message = _read(stream)
                except TimeoutError:
                    tracker.ping()  # keeps the tracking connection (and its state) alive
                    continue
                if not isinstance(message, list) or len(message) < 3 or message[0] != b"message":
                    continue
                keys = message[2]
                self.invalidate([k.decode() for k in keys] if isinstance(keys, list) else None)
        finally:
            tracker.close()
            stream.close()
            sock.close()

    def _reset(self, ready: bool) -> None:
        with self.lock:
            self.rows.clear()
            self.epoch += 1
            self.ready = ready

    def invalidate(self, keys: list[str] | None) -> None:
        """Drop `keys` (None = everything: Redis flushed or tracking was reset)."""
        with self.lock:
            self.epoch += 1
            if keys is None:
                self.rows.clear()
            else:
                for key in keys:
                    self.rows.pop(key, None)

    # --- reads -------------------------------------------------------------------------------
    def lookup(self, groups: list[tuple[list[str], list[str]]]) -> list | None:
        """[generation, row, ...] from memory when every row is cached, else None."""
        if not self.ready:
            return None
        rows = self.rows
        gen = rows.get(online.GEN_KEY)
        if gen is None:
            return None
        out = [gen[()]]
        for keys, fields in groups:
            fkey = tuple(fields)
            for key in keys:
                hit = rows.get(key)
                row = hit.get(fkey) if hit is not None else None
                if row is None:
                    return None
                out.append(row)
        return out

    def store(self, groups, fresh: list, epoch: int) -> None:
        """Keep rows read from Redis, unless a write landed while they were in flight."""
        with self.lock:
            if self.epoch != epoch or not self.ready:
                return
            rows = self.rows
            if len(rows) > MAX_KEYS:
                rows.clear()
            rows.setdefault(online.GEN_KEY, {})[()] = fresh[0]
            i = 1
            for keys, fields in groups:
                fkey = tuple(fields)
                for key in keys:
                    rows.setdefault(key, {})[fkey] = fresh[i]
                    i += 1

    def read_rows(self, groups: list[tuple[list[str], list[str]]]) -> list:
        """Same result as online.read_rows: [generation, row, row, ...]."""
        hit = self.lookup(groups)
        if hit is not None:
            return hit
        epoch = self.epoch
        fresh = online.read_rows(groups)
        self.store(groups, fresh, epoch)
        return fresh


def _send(sock: socket.socket, *parts) -> None:
    data = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        raw = str(part).encode()
        data.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    sock.sendall(b"".join(data))


def _read(stream):
    """One RESP2 reply: simple strings, errors, integers, bulk strings and arrays."""
    line = stream.readline()
    if not line:
        raise ConnectionError("Redis closed the invalidation connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise redis.ResponseError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply from Redis: {line[:40]!r}")


_instance: NearCache | None = None
_instance_lock = threading.Lock()


def enabled() -> bool:
    return settings.FEATURE_ONLINE_NEAR_CACHE


def get() -> NearCache | None:
    global _instance
    if not enabled():
        return None
    if _instance is None or _instance.url != settings.REDIS_URL or _instance.pid != os.getpid():
        with _instance_lock:
            if _instance is None or _instance.url != settings.REDIS_URL or _instance.pid != os.getpid():
                if _instance is not None:
                    _instance._stop = True
                _instance = NearCache(settings.REDIS_URL)
    return _instance


def evict(keys: list[str] | None) -> None:
    """Local writes: drop at once, not when Redis's invalidation message arrives."""
    if _instance is not None:
        _instance.invalidate(keys)


online.on_write(evict)  # read-your-writes: local writes drop their keys before Redis says so


def read_rows(groups) -> list:
    cache = get()
    return cache.read_rows(groups) if cache is not None else online.read_rows(groups)
