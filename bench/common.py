"""Helpers shared by benchmarks: an isolated portal environment and a keep-alive HTTP load loop."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_venv(name: str, packages: list[str]) -> Path:
    """A peer's own virtualenv under bench/.venvs/ (git-ignored), created on first use."""
    venv = ROOT / "bench" / ".venvs" / name
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603  fixed argv, no shell
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)  # noqa: S603  fixed argv (bench's own package pins), no shell
    return python


@contextmanager
def portal_env():
    """A throwaway var dir and embedded Redis; Django set up in this process against them."""
    sys.path.insert(0, str(ROOT))
    from apps.core.embedded_redis import free_port, start_redis

    var = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    port = free_port()
    redis = start_redis(port=port, data_dir=var / "redis", log_file=var / "redis.log", persist=False)
    if (os.cpu_count() or 1) > 1:  # Redis stands for another machine: keep it off the server's core (CPU 0)
        os.sched_setaffinity(redis.pid, {1})
    # Development mode (embedded services, generated keys) but DEBUG off, as in production:
    # DEBUG records every SQL statement, which would inflate the portal's side of a comparison.
    env = {"PORTAL_VAR_DIR": str(var), "PORTAL_REDIS_PORT": str(port), "PORTAL_ENV": "development",
           "PORTAL_DEBUG": "false", "API_THROTTLE_RATE": "1000000/min"}  # load generators are one user  # fmt: skip
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        _create_postgres_database(env["DATABASE_URL"])
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the cleanup below runs on kill
    try:
        yield {**os.environ, **env}
    finally:
        signal.signal(signal.SIGTERM, previous)
        redis.terminate()
        redis.wait()
        shutil.rmtree(var, ignore_errors=True)  # the database, vault and logs of this run


def _create_postgres_database(url: str) -> None:
    """The services-mode database named in `url`, created when missing (a fresh machine has none)."""
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not parts.scheme.startswith("postgres") or not name:
        return
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


@contextmanager
def server(args: list[str], env: dict, port: int, path: str = "/healthz"):
    log = open(Path(env.get("PORTAL_VAR_DIR") or tempfile.gettempdir()) / f"server-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603  argv from the calling bench, no shell
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1).read()
            break
        except Exception:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"server {args} did not start; see {log.name}") from None
            time.sleep(0.2)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def load(
    port: int, method: str, path: str, headers: dict, body: bytes | None = None, n: int = 2000, warmup: int = 200
) -> dict:
    """One keep-alive connection, sequential requests: latency percentiles and requests/s."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    latencies = []
    for i in range(n + warmup):
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} {path} answered {response.status}")
        if i >= warmup:
            latencies.append(time.perf_counter() - started)
    conn.close()
    latencies.sort()
    total = sum(latencies)
    return {
        "requests": n,
        "rps": round(n / total, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }
