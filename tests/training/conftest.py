from __future__ import annotations

import os

import pytest

TINY = {"epochs": 2, "batch_size": 256, "hidden_units": 8, "layers": 1, "patience": 0}


@pytest.fixture(autouse=True)
def _training_test_defaults(request, monkeypatch):
    """Defaults for the portal-side tests (not the Django-free engine tests under engine/).

    - Personas get a password per test; PBKDF2 costs about 1 s each on this shared host.
    - In-process tests run inside a transaction that another thread's connection cannot see, so
      the callbacks write on the training thread (TRAINING_WRITER=inline); the live_worker tests
      run the real writer process.
    - Unit tests decide who is online; the live-worker tests override `_no_gpu_workers`.
    """
    if "engine" in request.node.path.parts:
        return
    settings = request.getfixturevalue("settings")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.TRAINING_WRITER = "inline"
    settings.TRAINING_ONNX_EXPORTER = "torchscript"  # see below
    request.getfixturevalue("_no_gpu_workers")


@pytest.fixture
def sent_tasks(monkeypatch):
    """What the services send to Celery (by name) and revoke, instead of the broker."""
    from portal.celery import app as celery_app

    sent = {"tasks": [], "revoked": []}

    def send_task(name, args=None, **options):
        sent["tasks"].append((name, list(args or []), options))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    monkeypatch.setattr(celery_app.control, "revoke", sent["revoked"].append)
    return sent


@pytest.fixture
def live_delivery():
    """`live_delivery(job)`: a running delivery holds the job's lease (as the runner's heartbeat keeps
    it), so cancel asks it to stop instead of ending a job whose worker is gone. Released after the test."""
    from apps.core import workers
    from apps.training.services import LEASE_KEY

    keys = []

    def hold(job):
        key = LEASE_KEY.format(job.celery_task_id)
        workers.redis_client().set(key, "test-worker:1:held", px=60_000)
        keys.append(key)
        return job

    yield hold
    if keys:
        workers.redis_client().delete(*keys)


@pytest.fixture
def _no_gpu_workers(monkeypatch):
    from apps.core import workers

    monkeypatch.setattr(workers, "workers_by_queue", lambda: {"cpu": 1, "default": 1})


@pytest.fixture
def launch(owner):
    from apps.training.services import job_launch

    def make(user=None, **kwargs):
        kwargs.setdefault("template", "tabular-mlp-classifier")
        kwargs.setdefault("params", dict(TINY))
        return job_launch(actor=user or owner, **kwargs)

    return make


# The TorchScript exporter takes ~0.2 s where dynamo takes 5-10 s per export on this shared host, so
# this suite's jobs use it (the same parity gate runs either way). The production default, dynamo,
# is covered by tests/training/engine/test_engine_export.py. The environment is for the live worker
# and writer processes (their settings read it; they inherit it when the session starts them);
# in-process tests set `settings` in `_training_test_defaults`.
os.environ.setdefault("TRAINING_ONNX_EXPORTER", "torchscript")
# A killed worker's job resumes once its lease expires (production default 60 s); the live worker
# of test_e2e.py uses the shortest lease settings allow so the resume test does not wait a minute.
os.environ.setdefault("TRAINING_LEASE_TTL_S", "5")


def transactional_db_mark():
    """`django_db(transaction=True)` that also flushes cleanly on PostgreSQL.

    Django leaves swapped-out auditlog's `auditlog_logentry` table out of `flush`, and its foreign
    key to the users table makes the plain TRUNCATE fail on PostgreSQL. Naming every app as
    available makes Django flush with CASCADE (and re-run post_migrate: roles, permissions).
    """
    from django.conf import settings

    return pytest.mark.django_db(transaction=True, available_apps=list(settings.INSTALLED_APPS))
