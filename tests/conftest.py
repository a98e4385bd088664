"""Shared fixtures: personas (owner, collaborator, stranger, approver, admin) and API clients."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import roles
from apps.accounts.services import team_create, token_create


def make_user(username: str, *role_names: str, **extra):
    user = get_user_model().objects.create_user(
        username=username, password="correct-horse-battery-staple", email=f"{username}@example.com", **extra
    )
    if role_names:
        user.groups.add(*Group.objects.filter(name__in=role_names))
    return user


@pytest.fixture
def owner(db):
    return make_user("owner", roles.ML_ENGINEERS, roles.DATA_STEWARDS)


@pytest.fixture
def collaborator(db):
    return make_user("collaborator", roles.ML_ENGINEERS)


@pytest.fixture
def stranger(db):
    """Same roles as the owner, but nothing has been shared with them."""
    return make_user("stranger", roles.ML_ENGINEERS, roles.DATA_STEWARDS)


@pytest.fixture
def approver(db):
    return make_user("approver", roles.APPROVERS)


@pytest.fixture
def auditor(db):
    return make_user("auditor", roles.AUDITORS)


@pytest.fixture
def admin_user(db):
    return make_user("platformadmin", roles.PLATFORM_ADMINS, is_staff=True, is_superuser=True)


@pytest.fixture
def team(db, owner, collaborator):
    return team_create(name="Risk Analytics", slug="risk", members=[owner, collaborator])


# --- Access personas (STYLE 9): the same roles as the owner, differing only in what is shared ----
PERSONA_ROLES = (roles.ML_ENGINEERS, roles.DATA_STEWARDS)


@pytest.fixture
def viewer(db):
    """Give them a share with `share_as(obj, viewer, "viewer")`; same roles as the owner."""
    return make_user("viewer", *PERSONA_ROLES)


@pytest.fixture
def editor(db):
    return make_user("editor", *PERSONA_ROLES)


@pytest.fixture
def teammate(db, team):
    """A member of `team` (besides owner and collaborator) holding nothing of their own."""
    user = make_user("teammate", *PERSONA_ROLES)
    user.groups.add(team.group)
    return user


def share_as(obj, user=None, role="viewer", *, team=None):
    """Share `obj` through the one share service, acting as its owner (test set-up only)."""
    from apps.core.sharing import share_object

    share_object(obj=obj, actor=obj.owner, role=role, user=user, team=team)


@dataclass
class Personas:
    """Everyone the access matrix asks (tests/access): one of each, made once per matrix class."""

    owner: object
    viewer: object
    editor: object
    teammate: object
    stranger: object
    admin: object
    auditor: object
    bystander: object  # the third party that share/unshare rows name
    team: object

    def user(self, persona: str):
        return self.teammate if persona == "team" else getattr(self, persona)


def make_personas() -> Personas:
    """The matrix personas (callable inside a class-scoped transaction, where fixtures cannot run)."""
    owner = make_user("owner", *PERSONA_ROLES)
    teammate = make_user("teammate", *PERSONA_ROLES)
    return Personas(
        owner=owner,
        viewer=make_user("viewer", *PERSONA_ROLES),
        editor=make_user("editor", *PERSONA_ROLES),
        teammate=teammate,
        stranger=make_user("stranger", *PERSONA_ROLES),
        admin=make_user("platformadmin", roles.PLATFORM_ADMINS, is_staff=True, is_superuser=True),
        auditor=make_user("auditor", roles.AUDITORS),
        bystander=make_user("bystander", *PERSONA_ROLES),
        team=team_create(name="Access Team", slug="access-team", members=[owner, teammate]),
    )


def api_client_for(user, scopes=("read", "write", "predict", "features")) -> APIClient:
    """An API client that authenticates like a script: with a real token. A platform admin's token
    also gets the `admin` scope, which platform-admin actions through a token need (issue 17)."""
    if user.is_superuser and "admin" not in scopes:
        scopes = (*scopes, "admin")
    _, key = token_create(user=user, name="test", scopes=list(scopes), expires_days=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def page_client_for(user) -> Client:
    """A browser-like test client signed in as `user` (session cookie)."""
    client = Client()
    client.force_login(user)
    return client


def object_permission_rows(user_model, group_model) -> list[tuple]:
    """Every direct object-permission row of a model's guardian tables, users first then ("g", ...) groups."""
    users = user_model.objects.values_list("user_id", "permission__codename", "content_object_id")
    groups = group_model.objects.values_list("group_id", "permission__codename", "content_object_id")
    return sorted(users) + sorted(("g", *g) for g in groups)


@pytest.fixture
def api_owner(owner):
    return api_client_for(owner)


@pytest.fixture
def api_collaborator(collaborator):
    return api_client_for(collaborator)


@pytest.fixture
def api_stranger(stranger):
    return api_client_for(stranger)


@pytest.fixture
def api_admin(admin_user):
    return api_client_for(admin_user)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, plus: before the test database is dropped, close the connection that async
    tests left in asgiref's thread-sensitive executor thread (with CONN_MAX_AGE it stays open,
    and PostgreSQL refuses to drop a database that has a session)."""
    yield
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    with django_db_blocker.unblock():
        asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())


# --- Real processes over the test database: a Celery worker and an ASGI server -----------------
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _die_with_parent() -> None:
    from apps.core.launcher import _die_with_parent as die

    die()


def _process_env() -> dict:
    """Environment that points a child process at the test database (not the dev one)."""
    from django.conf import settings
    from django.db import connection

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        env["PORTAL_SQLITE_PATH"] = str(db["NAME"])
    else:
        env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env["PORTAL_VAR_DIR"] = str(settings.VAR_DIR)
    env["AUDIT_CHECKPOINT_PATH"] = str(_live_audit_dir(settings) / "audit-checkpoints.jsonl")
    env["PORTAL_2FA_ENFORCED"] = "false"  # as in-process tests (see _two_factor_not_enforced)
    return env


def _live_audit_dir(settings) -> Path:
    """Where the test server and worker keep audit checkpoints and the verifier's state. Emptied
    before every test: a flushed test database looks exactly like a purged trail."""
    return Path(settings.VAR_DIR) / "audit-live"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_up(process: subprocess.Popen, probe, log: Path, what: str, *, timeout: float = 60) -> None:
    """Call `probe()` until it stops raising; stop `process` and fail with its log's tail if it exits
    first or `timeout` passes (test servers, the S3 server, the OIDC provider)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise RuntimeError(f"{what} did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def live_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker (queues cpu, default) on the test database and the test Redis."""
    from apps.core.workers import workers_by_queue

    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with django_db_blocker.unblock():
        env = _process_env()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.child_process",  # clears the content-type cache per task (flushed test database)
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            "cpu,default",
            "-n",
            f"test-{os.getpid()}@%h",
            "--concurrency",
            "1",
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + 60
    while not workers_by_queue().get("cpu"):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError(f"test worker did not come online:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    process.log_path = log
    yield process
    _stop(process)


@pytest.fixture(scope="session")
def portal_server(django_db_setup, django_db_blocker, tmp_path_factory):
    """uvicorn serving portal.asgi on a free port over the test database; yields the base URL."""
    yield from serve_portal(django_db_blocker, tmp_path_factory)


def serve_portal(django_db_blocker, tmp_path_factory, **extra_env):
    """Start uvicorn on the test database (with `extra_env` on top of the test environment), yield
    its base URL, stop it afterwards: the body of `portal_server`, for a server set up otherwise."""
    import urllib.request

    from apps.core.embedded_redis import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with django_db_blocker.unblock():
        env = {**_process_env(), **extra_env}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.child_process",  # clears the content-type cache per request (flushed test database)
            "uvicorn",
            "portal.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_up(process, lambda: urllib.request.urlopen(f"{base}/healthz", timeout=2).read(), log, "test server")
    yield base
    _stop(process)


@pytest.fixture(autouse=True)
def _two_factor_not_enforced(settings):
    """Two-factor enforcement (issue 17) is off for the suite: approvers and admins sign in with
    force_login and decide through tokens without a second factor. The tests of 2FA and step-up
    (tests/accounts/test_two_factor*.py) switch it on with `settings.PORTAL_2FA_ENFORCED = True`."""
    settings.PORTAL_2FA_ENFORCED = False


@pytest.fixture(autouse=True)
def _database_basics(request):
    """Content types, permissions and role groups, as every test expects them.

    Transactional tests flush the database afterwards. A flush marked with `available_apps` (which
    PostgreSQL needs for TRUNCATE ... CASCADE) skips post_migrate, leaving the next transactional
    test without roles; and recreated content types get new ids, so cached ids must go.
    """
    from django.contrib.contenttypes.models import ContentType

    from apps.accounts import principals
    from apps.core.permissions import clear_caches

    ContentType.objects.clear_cache()
    clear_caches()
    principals._LISTENER.ensure()  # subscribed before the test: its start clears the caller cache
    principals._LISTENER.ready.wait(5)
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction") and not marker.kwargs.get("available_apps"):
        request.getfixturevalue("transactional_db")
        if not Group.objects.filter(name=roles.ML_ENGINEERS).exists():
            from django.core.management.sql import emit_post_migrate_signal

            emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    yield


@pytest.fixture(autouse=True)
def _keyring_restored():
    """A test that rotates or retires the embedded key ring (keys_rotate, a test of rotation) puts
    the ring back afterwards: audit entries committed outside a test's transaction stay hashed under
    the session's keys, and later tests write and verify with them."""
    from apps.core import vault

    path = vault.keyring_path()
    before = path.read_bytes() if path.exists() else None
    yield
    after = path.read_bytes() if path.exists() else None
    if after != before:
        if before is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(before)
        vault._ring_cache.clear()


@pytest.fixture(autouse=True)
def _audit_checkpoints(settings):
    """Each test its own audit checkpoint file (and verifier state beside it): a checkpoint anchors
    one database's trail, and test databases are rolled back and flushed underneath."""
    import shutil
    import uuid

    settings.AUDIT_CHECKPOINT_PATH = settings.VAR_DIR / f"audit-checkpoints-{uuid.uuid4().hex}.jsonl"
    shutil.rmtree(_live_audit_dir(settings), ignore_errors=True)
