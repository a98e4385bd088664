"""`manage.py up`: the whole portal in one command, and a clean stop on Ctrl-C.

Children run in their own session so a terminal Ctrl-C reaches only the launcher, which then
stops them in order (web, beat, workers, Redis). Each child also gets PR_SET_PDEATHSIG, so a
kill -9 of the launcher takes them down too; their pid files let the next start clean up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from apps.core.embedded_redis import port_is_free, start_redis, wait_for_redis
from apps.core.processes import die_with_parent

STOP_TIMEOUT_S = 20


def _die_with_parent() -> None:
    """preexec_fn of the launcher's children: SIGTERM when the launcher dies, own session."""
    die_with_parent(signal.SIGTERM)
    os.setsid()


def _worker_dies_with_parent() -> None:
    """preexec_fn of Celery workers: SIGKILL when the launcher dies. A warm shutdown (SIGTERM)
    waits for the running training job, which kept training for minutes after a kill -9 of the
    launcher, and a cold one (SIGQUIT) could stall reconnecting to the Redis that died with it.
    The job resumes from its last checkpoint on the next start (apps/core/recovery.py)."""
    die_with_parent(signal.SIGKILL)
    os.setsid()


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    pid_file: Path


@dataclass
class Launcher:
    host: str = "127.0.0.1"
    port: int = 8000
    worker: bool = True
    beat: bool = True
    out = sys.stdout
    children: list[Child] = field(default_factory=list)
    run_dir: Path = field(default_factory=lambda: settings.VAR_DIR / "run")
    log_dir: Path = field(default_factory=lambda: settings.VAR_DIR / "log")
    _stopping: threading.Event = field(default_factory=threading.Event)

    # -- lifecycle ---------------------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.reap_stale()
        if not port_is_free(self.port, self.host):
            raise SystemExit(f"Port {self.port} on {self.host} is already in use. Stop what uses it or pass --port.")
        if settings.EMBEDDED_REDIS:
            port = settings.EMBEDDED_REDIS_PORT
            if not port_is_free(port):
                raise SystemExit(f"Port {port} for the embedded Redis is in use; set PORTAL_REDIS_PORT to a free port.")
            self.say(f"starting embedded Redis on 127.0.0.1:{port}")
            proc = start_redis(
                port=port,
                data_dir=settings.VAR_DIR / "redis",
                log_file=self.log_dir / "redis.log",
                preexec_fn=_die_with_parent,
            )
            self._track("redis", proc)
        else:
            wait_for_redis(settings.REDIS_URL, timeout=10)

    def start_processes(self) -> None:
        python = sys.executable
        web = [
            python,
            "-m",
            "uvicorn",
            "portal.asgi:application",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
        ]
        self._spawn("web", web)
        if self.worker:
            queues = ["cpu", "default"]
            if settings.PORTAL_REGION != "default":
                queues.append(f"cpu.{settings.PORTAL_REGION}")
            self._spawn(
                "worker",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "portal",
                    "worker",
                    "-Q",
                    ",".join(queues),
                    "-n",
                    f"cpu-{os.getpid()}@%h",
                    "--concurrency",
                    "2",
                    "-l",
                    "INFO",
                ],
                is_worker=True,
            )
            if self._cuda():
                gpu_queues = ["gpu"] + (
                    [f"gpu.{settings.PORTAL_REGION}"] if settings.PORTAL_REGION != "default" else []
                )
                self._spawn(
                    "gpu-worker",
                    [
                        python,
                        "-m",
                        "celery",
                        "-A",
                        "portal",
                        "worker",
                        "-Q",
                        ",".join(gpu_queues),
                        "-n",
                        f"gpu-{os.getpid()}@%h",
                        "--concurrency",
                        "1",
                        "-l",
                        "INFO",
                    ],
                    is_worker=True,
                )
        if self.beat:
            self._spawn(
                "beat",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "portal",
                    "beat",
                    "-l",
                    "INFO",
                    "-s",
                    str(settings.VAR_DIR / "celerybeat-schedule"),
                    "--pidfile",
                    str(self.run_dir / "celerybeat.pid"),
                ],
            )

    def wait_until_ready(self, timeout: float = 120.0) -> dict:
        url = f"http://{self.host}:{self.port}/healthz"
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline and not self._stopping.is_set():
            self._check_children()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    last = json.loads(response.read())
            except Exception as exc:  # not up yet
                last = {"status": f"waiting ({type(exc).__name__})"}
            else:
                queues = last.get("workers", {}).get("queues", {})
                if last.get("status") == "ok" and (not self.worker or queues.get("cpu")):
                    return last
            time.sleep(0.5)
        raise SystemExit(f"The portal did not become healthy within {timeout:.0f} s; last /healthz: {last}")

    def serve_forever(self) -> int:
        while not self._stopping.is_set():
            crashed = self._check_children(raise_on_exit=False)
            if crashed:
                self.say(
                    f"{crashed.name} exited unexpectedly (code {crashed.process.returncode}); "
                    f"see {self.log_dir / (crashed.name + '.log')}. Stopping the portal."
                )
                return 1
            self._stopping.wait(0.5)
        return 0

    def stop(self) -> None:
        self._stopping.set()
        order = ["web", "beat", "gpu-worker", "worker", "redis"]
        for name in order:
            for child in [c for c in self.children if c.name == name]:
                self._terminate(child)
        self.children.clear()

    # -- helpers ---------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(f"[portal] {message}", file=self.out, flush=True)

    def _cuda(self) -> bool:
        from apps.core.workers import cuda_available

        return cuda_available()

    def _spawn(self, name: str, args: list[str], *, is_worker: bool = False) -> None:
        preexec = _worker_dies_with_parent if is_worker else _die_with_parent
        log_file = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        env = {
            **os.environ,
            "PORTAL_REDIS_PORT": str(settings.EMBEDDED_REDIS_PORT),
            "PYTHONUNBUFFERED": "1",
            "PORTAL_VAR_DIR": str(settings.VAR_DIR),
        }
        if not os.environ.get("PORTAL_PUBLIC_URL"):  # script jobs reach this web process through it
            reach = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104  a bind-all address is reached on loopback
            env["PORTAL_PUBLIC_URL"] = f"http://{reach}:{self.port}"
        process = subprocess.Popen(  # noqa: S603  argv from the launcher's own process table, no shell
            args,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
        )
        self._track(name, process)
        self.say(f"started {name} (pid {process.pid}), log: {self.log_dir / (name + '.log')}")

    def _track(self, name: str, process: subprocess.Popen) -> None:
        pid_file = self.run_dir / f"{name}.pid"
        pid_file.write_text(json.dumps({"pid": process.pid, "cmd": " ".join(map(str, process.args[:4]))}))
        self.children.append(Child(name, process, pid_file))

    def _check_children(self, raise_on_exit: bool = True) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None:
                if raise_on_exit:
                    raise SystemExit(
                        f"{child.name} exited with code {child.process.returncode} while starting; "
                        f"see {self.log_dir / (child.name + '.log')}."
                    )
                return child
        return None

    def _terminate(self, child: Child) -> None:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in {STOP_TIMEOUT_S} s; killing it")
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        # Anything the child left in its session (e.g. pool processes) goes too.
        try:
            os.killpg(child.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        child.pid_file.unlink(missing_ok=True)
        self.say(f"stopped {child.name}")

    def reap_stale(self) -> None:
        """After a kill -9, pid files remain: stop what they name if it is still ours, then forget it."""
        for pid_file in sorted(self.run_dir.glob("*.pid")):
            try:
                pid = json.loads(pid_file.read_text())["pid"] if pid_file.suffix == ".pid" else None
            except (ValueError, KeyError, OSError):
                pid = _int_or_none(pid_file.read_text().strip()) if pid_file.exists() else None
            if pid and _is_ours(pid):
                self.say(f"stopping leftover {pid_file.stem} (pid {pid}) from a previous run")
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(pid, sig)
                    except (ProcessLookupError, PermissionError):
                        try:
                            os.kill(pid, sig)
                        except ProcessLookupError:
                            break
                    if _wait_gone(pid, 10):
                        break
            pid_file.unlink(missing_ok=True)


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return any(
        marker in cmdline for marker in (b"redis-server", b"uvicorn", b"celery", str(settings.BASE_DIR).encode())
    )


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie child of nobody we know is as good as gone.
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.1)
    return False
