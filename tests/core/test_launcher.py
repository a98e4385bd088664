"""`manage.py up` end to end, always in the embedded mode: real Redis, worker, ASGI server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import pytest
from celery import Celery
from websockets.sync.client import connect

from apps.core.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class Portal:
    def __init__(self, var_dir: Path):
        self.var_dir = var_dir
        self.port = free_port()
        self.redis_port = free_port()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "DATABASE_URL", "PORTAL_SQLITE_PATH", "DJANGO_SETTINGS_MODULE")
        }
        self.env.update(
            PORTAL_VAR_DIR=str(var_dir),
            PORTAL_REDIS_PORT=str(self.redis_port),
            PORTAL_ENV="development",
            PYTHONUNBUFFERED="1",
        )
        self.process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log = (self.var_dir.parent / f"up-{time.time_ns()}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--port", str(self.port), "--no-beat"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                health = json.loads(urllib.request.urlopen(f"{self.base}/healthz", timeout=2).read())
                if health["status"] == "ok" and health["workers"]["queues"].get("cpu"):
                    return
            except Exception:  # noqa: S110  polling: not up yet, try again
                pass
            time.sleep(0.5)
        raise AssertionError(f"portal did not become healthy:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def _wait_gone(processes, timeout=30.0):
    deadline = time.monotonic() + timeout
    while _alive(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _alive(processes)


def test_up_round_trips_a_task_and_a_socket_then_stops_cleanly(tmp_path):
    portal = Portal(tmp_path / "var")
    portal.start()
    startup = portal.output()
    assert "Traceback" not in startup and "WARNING" not in startup.upper().replace("[PORTAL]", ""), startup
    try:
        portal.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model as g; "
            "g().objects.create_user('probe', password='a-long-password-123')",
        )
        key = portal.manage("token_create", "probe", "--scope", "read").strip()
        user_id = json.loads(
            urllib.request.urlopen(
                urllib.request.Request(f"{portal.base}/api/v1/me", headers={"Authorization": f"Token {key}"})
            ).read()
        )["id"]
        nonce = uuid.uuid4().hex
        with connect(
            f"ws://127.0.0.1:{portal.port}/ws/notifications/",
            additional_headers={"Authorization": f"Token {key}"},
            open_timeout=10,
        ) as socket:
            assert json.loads(socket.recv(timeout=10))["type"] == "subscribed"
            redis_url = f"redis://127.0.0.1:{portal.redis_port}/0"
            app = Celery(broker=redis_url, backend=redis_url)
            result = app.send_task("core.ping", args=[user_id, nonce], queue="default")
            assert result.get(timeout=30)["nonce"] == nonce
            message = json.loads(socket.recv(timeout=10))
            assert message == {"type": "notification", "kind": "pong", "nonce": nonce}
        children = portal.descendants()
        names = " ".join(" ".join(p.cmdline()) for p in children)
        assert "redis-server" in names and "uvicorn" in names and "celery" in names
    finally:
        portal.process.send_signal(signal.SIGINT)
        code = portal.process.wait(90)
    assert code == 0, portal.output()
    assert not _wait_gone(children, 10), "processes survived Ctrl-C"
    assert not list((tmp_path / "var" / "run").glob("*.pid"))


def test_second_start_after_kill_9_recovers(tmp_path):
    portal = Portal(tmp_path / "var")
    portal.start()
    children = portal.descendants()
    portal.process.send_signal(signal.SIGKILL)
    portal.process.wait(10)
    # Children die with their parent (PR_SET_PDEATHSIG) even though nobody stopped them.
    assert not _wait_gone(children, 40), "children outlived a kill -9 of the launcher"
    assert list((tmp_path / "var" / "run").glob("*.pid")), "expected stale pid files after kill -9"
    portal.start()
    try:
        assert urllib.request.urlopen(f"{portal.base}/healthz", timeout=5).status == 200
    finally:
        portal.process.send_signal(signal.SIGINT)
        assert portal.process.wait(90) == 0, portal.output()


def test_kill_9_of_the_launcher_mid_training_leaves_no_process(tmp_path):
    """Worker, pool process and training writer all go with the launcher within seconds (a warm
    worker shutdown used to keep training for over a minute with Redis gone)."""
    portal = Portal(tmp_path / "var")
    portal.start()
    portal.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model as g; from django.contrib.auth.models import Group; "
        "u = g().objects.create_user('trainer', password='a-long-password-123'); "
        "u.groups.add(Group.objects.get(name='ml-engineers'))",
    )
    key = portal.manage("token_create", "trainer", "--scope", "read", "--scope", "write").strip()
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    body = json.dumps({"template": "digits-cnn", "params": {"epochs": 200, "patience": 0}}).encode()
    job = json.loads(
        urllib.request.urlopen(urllib.request.Request(f"{portal.base}/api/v1/training/jobs/", body, headers)).read()
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = json.loads(
            urllib.request.urlopen(
                urllib.request.Request(f"{portal.base}/api/v1/training/jobs/{job['id']}/", headers=headers)
            ).read()
        )
        if state["state"] == "running" and (state.get("progress") or 0) > 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the job never started training: {state}\n{portal.output()}")
    children = portal.descendants()
    assert len(children) >= 5, [p.cmdline() for p in children]  # redis, web, worker, pool processes, writer
    portal.process.send_signal(signal.SIGKILL)
    portal.process.wait(10)
    left = _wait_gone(children, 10)
    assert not left, f"still running 10 s after kill -9: {[' '.join(p.cmdline()[:6]) for p in left]}"
