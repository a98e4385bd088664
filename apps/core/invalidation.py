"""One Redis pub/sub listener thread per process and channel, for in-process caches that must drop
their entries when another process announces a change (the caller cache in
apps/accounts/principals.py, the serving plans in apps/serving/inference/cache.py).

While the listener is subscribed (`ready` is set) a cache may trust its entries; while it is not
(Redis gone, just forked, still connecting) callers compare a generation counter instead. On every
(re)subscription `on_message` runs too: anything may have changed while nobody listened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings

log = logging.getLogger(__name__)


class ChannelListener:
    def __init__(self, channel: str, on_message: Callable[[], None], *, name: str) -> None:
        self.channel, self.on_message, self.name = channel, on_message, name
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.ready = threading.Event()

    def ensure(self) -> None:
        """Start the listener thread in this process (again after a fork); cheap when running."""
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid, self.ready = os.getpid(), threading.Event()  # a forked child starts its own
            threading.Thread(target=self._run, args=(self.pid, self.ready), name=self.name, daemon=True).start()

    def listening(self) -> bool:
        self.ensure()
        return self.ready.is_set()

    def _run(self, pid: int, ready: threading.Event) -> None:
        while self.pid == pid:
            pubsub = None
            try:
                client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, health_check_interval=10)
                pubsub = client.pubsub()
                pubsub.subscribe(self.channel)
                while self.pid == pid:
                    message = pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    if message["type"] in ("subscribe", "message"):
                        self.on_message()
                        if message["type"] == "subscribe":
                            ready.set()
            except Exception as exc:  # callers compare the counter until the listener is back
                (log.warning if ready.is_set() else log.debug)("%s listener lost Redis (%s); retrying", self.name, exc)
            finally:
                ready.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
            time.sleep(1)
