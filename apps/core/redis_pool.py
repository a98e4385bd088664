"""One Redis connection pool per process, shared by every thread: cache, API throttle, online
store, worker checks.

Django's `RedisCache` builds a connection pool per cache object, and the cache handler hands out
a new cache object per asyncio context, i.e. per request under ASGI: every request opened a TCP
connection (and redis-py re-read its package metadata for each). Here the pool is keyed by the
process id (a forked Celery child builds its own) and is blocking: past `REDIS_POOL_SIZE`
connections a caller waits for a free one instead of opening more.
"""

from __future__ import annotations

import os
import threading

import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_lock = threading.Lock()
_pools: dict[tuple[int, str], redis.ConnectionPool] = {}
_clients: dict[tuple[int, str], redis.Redis] = {}

POOL_WAIT_S = 5  # a caller waits this long for a free connection before the call fails


def connection_pool(url: str | None = None) -> redis.ConnectionPool:
    url = url or settings.REDIS_URL
    key = (os.getpid(), url)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = redis.BlockingConnectionPool.from_url(
                    url,
                    max_connections=settings.REDIS_POOL_SIZE,
                    timeout=POOL_WAIT_S,
                    socket_timeout=5,
                    socket_connect_timeout=2,
                    health_check_interval=30,
                )
    return pool


def redis_client(url: str | None = None) -> redis.Redis:
    """The process's client for `url` (default: settings.REDIS_URL) on the shared pool."""
    url = url or settings.REDIS_URL
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis(connection_pool=connection_pool(url))
    return client


class _PooledClient(RedisCacheClient):
    def _get_connection_pool(self, write):
        return connection_pool(self._servers[self._get_connection_pool_index(write)])

    def get_client(self, key=None, *, write=False):
        # Django builds a new `redis.Redis` (and its table of ~170 response callbacks) per call.
        return redis_client(self._servers[self._get_connection_pool_index(write)])


class PooledRedisCache(RedisCache):
    """Django's Redis cache on the process's shared pool."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _PooledClient
