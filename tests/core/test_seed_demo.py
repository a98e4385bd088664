"""`manage.py seed_demo` works on its own: it starts what it needs or refuses before changing
anything, and never loses the credentials it created."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from apps.core.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env(var_dir: Path, **extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "DATABASE_URL", "PORTAL_SQLITE_PATH", "DJANGO_SETTINGS_MODULE", "PORTAL_ENV")
    }
    return {**env, "PORTAL_VAR_DIR": str(var_dir), "PORTAL_ENV": "development", **extra}


def _seed(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "seed_demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_seed_demo_alone_starts_redis_and_keeps_the_logins(tmp_path):
    var_dir, port = tmp_path / "var", free_port()
    result = _seed(_env(var_dir, PORTAL_REDIS_PORT=str(port)))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    logins = var_dir / "demo-logins.txt"
    assert logins.stat().st_mode & 0o777 == 0o600
    saved = dict(line.split()[:2] for line in logins.read_text().splitlines())
    assert set(saved) == {"engineer", "engineer2", "steward", "approver", "admin", "auditor", "viewer"}
    assert result.stdout.count(saved["engineer"]) == 1, "the logins are printed once"
    assert not [p for p in psutil.process_iter(["cmdline"]) if f":{port}" in " ".join(p.info["cmdline"] or [])]
    again = _seed(_env(var_dir, PORTAL_REDIS_PORT=str(port)))
    assert again.returncode == 0 and "already exist" in again.stdout
    assert dict(line.split()[:2] for line in logins.read_text().splitlines()) == saved


def test_seed_demo_refuses_before_changing_anything_without_its_redis(tmp_path):
    var_dir = tmp_path / "var"
    result = _seed(_env(var_dir, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    assert result.returncode != 0 and "REDIS_URL is unreachable" in result.stderr
    database = var_dir / "portal.sqlite3"
    if database.exists():
        with sqlite3.connect(database) as connection:
            tables = {row[0] for row in connection.execute("select name from sqlite_master where type='table'")}
            assert "auth_user" not in tables or not connection.execute("select count(*) from auth_user").fetchone()[0]
    assert not (var_dir / "demo-logins.txt").exists()
