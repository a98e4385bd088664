"""Worker presence and capability checks.

Each worker writes a heartbeat key to Redis every few seconds listing the queues it consumes,
so /healthz and the queue page answer from one Redis read instead of a broadcast round trip.
A worker asked to consume a `gpu` queue refuses to start when CUDA is not available.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time

import redis
from celery.signals import celeryd_after_setup, worker_process_init, worker_ready, worker_shutdown

from apps.core.redis_pool import redis_client as shared_redis_client

log = logging.getLogger(__name__)
HEARTBEAT_PREFIX = "portal:worker:"
HEARTBEAT_EVERY_S = 3
HEARTBEAT_TTL_S = 12

_state: dict = {"queues": [], "hostname": None, "stop": threading.Event()}


def redis_client() -> redis.Redis:
    """The process's client on its shared pool: a new client per call opened a TCP connection
    for every cancel check of a running job."""
    return shared_redis_client()


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@celeryd_after_setup.connect
def check_capabilities(sender, instance, **kwargs):
    queues = sorted(instance.app.amqp.queues.consume_from or instance.app.amqp.queues)
    _state["queues"] = queues
    _state["hostname"] = sender
    if any(q == "gpu" or q.startswith("gpu.") for q in queues) and not cuda_available():
        message = (
            f"This worker was asked to consume {', '.join(queues)}, but no CUDA device is available "
            "(torch.cuda.is_available() is False). GPU jobs would run on the CPU without anyone "
            "knowing, so the worker refuses to start. Start it with -Q cpu,default instead, or on a GPU host."
        )
        log.critical(message)
        print(message, file=sys.stderr, flush=True)
        os._exit(78)  # EX_CONFIG


def _beat() -> None:
    client = redis_client()
    key = f"{HEARTBEAT_PREFIX}{_state['hostname']}"
    body = json.dumps(
        {
            "hostname": _state["hostname"],
            "queues": _state["queues"],
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "gpu": any(q.startswith("gpu") for q in _state["queues"]),
        }
    )
    while not _state["stop"].is_set():
        try:
            client.set(key, body, ex=HEARTBEAT_TTL_S)
        except redis.RedisError:
            log.warning("worker heartbeat could not reach Redis; retrying")
        _state["stop"].wait(HEARTBEAT_EVERY_S)
    try:
        client.delete(key)
    except redis.RedisError:
        pass


@worker_ready.connect
def start_heartbeat(sender=None, **kwargs):
    if _state["hostname"] is None:
        _state["hostname"] = getattr(sender, "hostname", socket.gethostname())
    threading.Thread(target=_beat, name="portal-heartbeat", daemon=True).start()


@worker_process_init.connect
def settle_child_heap(**kwargs):
    """Each pool process: die with the worker process (a killed worker must not leave a pool
    process training on with nobody to report to), and keep full collections off the inherited
    start-up heap (see heap.py)."""
    from apps.core.heap import settle
    from apps.core.processes import die_with_parent

    die_with_parent(signal.SIGKILL)
    settle(import_urls=False)


@worker_shutdown.connect
def stop_heartbeat(sender=None, **kwargs):
    _state["stop"].set()
    time.sleep(0.05)


def workers_online() -> list[dict]:
    client = redis_client()
    keys = list(client.scan_iter(match=f"{HEARTBEAT_PREFIX}*", count=500))
    if not keys:
        return []
    return [json.loads(raw) for raw in client.mget(keys) if raw]


def workers_by_queue() -> dict[str, int]:
    counts: dict[str, int] = {}
    for worker in workers_online():
        for queue in worker["queues"]:
            counts[queue] = counts.get(queue, 0) + 1
    return counts


# kombu's Redis transport keeps priority levels 3, 6 and 9 in lists named "<queue>\x06\x16<n>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages waiting per queue, all priority levels together."""
    client = redis_client()
    pipe = client.pipeline()
    for queue in queues:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    counts = pipe.execute()
    step = len(_PRIORITY_SUFFIXES)
    return {queue: sum(counts[i * step : (i + 1) * step]) for i, queue in enumerate(queues)}
