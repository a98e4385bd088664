"""Start extra portal web servers (uvicorn over the test database) with their own settings."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

from apps.core.embedded_redis import free_port
from tests.conftest import ROOT, _die_with_parent, _process_env, _stop, wait_until_up


def start_server(tmp_path, **env_overrides: str) -> tuple[subprocess.Popen, int]:
    """A uvicorn child serving portal.asgi on a free port; returns (process, port). Stop it with `stop`."""
    port = free_port()
    env = {**_process_env(), **env_overrides}
    log = tmp_path / f"server-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.child_process", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log"],  # fmt: skip
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
    )  # fmt: skip
    wait_until_up(
        process, lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read(), log, "server"
    )
    return process, port


stop = _stop
