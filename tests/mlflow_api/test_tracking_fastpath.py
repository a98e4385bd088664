"""The lean ASGI path for the MLflow client's log-metric and log-batch (apps/mlflow_api/fastpath.py):
the same answers, refusals and writes as through Django, driven in process as uvicorn would."""

from __future__ import annotations

import json

import pytest

from apps.accounts.services import token_create
from apps.experiments import selectors
from apps.experiments import services as experiments
from apps.experiments.models import Run
from tests.conftest import share_as

API = "/api/2.0/mlflow"


def asgi_post(path: str, body: bytes, key: str | None, app=None) -> tuple[int, dict]:
    """One POST through apps.mlflow_api.fastpath.wrap (Django behind it), as uvicorn would send it."""
    import asyncio

    from apps.mlflow_api import fastpath
    from portal.asgi import django_asgi_app

    headers = [(b"content-type", b"application/json")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "client": ("127.0.0.1", 1),
             "query_string": b"", "root_path": "", "scheme": "http", "server": ("testserver", 80)}  # fmt: skip
    sent: list = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run((app or fastpath.wrap(django_asgi_app))(scope, receive, send))
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(payload)


@pytest.mark.django_db(transaction=True)
def test_lean_path_logs_like_the_django_path(owner, stranger, viewer):
    from apps.mlflow_api import fastpath

    experiment = experiments.experiment_create(name="lean-path", actor=owner)
    run = experiments.run_create(experiment=experiment, actor=owner, name="lean", source="script")
    share_as(experiment, viewer, "viewer")
    _, key = token_create(user=owner, name="m", scopes=["read", "write"], expires_days=1)
    metric = {"run_id": str(run.pk), "key": "loss", "value": 0.25, "timestamp": 5, "step": 3}
    assert fastpath.handles({"type": "http", "method": "POST", "path": f"{API}/runs/log-metric",
                             "headers": [(b"authorization", b"Bearer x")]})  # fmt: skip
    assert asgi_post(f"{API}/runs/log-metric", json.dumps(metric).encode(), key) == (200, {})
    batch = {"run_id": str(run.pk), "metrics": [{**metric, "step": 4}], "params": [{"key": "lr", "value": "0.1"}]}
    assert asgi_post(f"{API}/runs/log-batch", json.dumps(batch).encode(), key) == (200, {})
    assert selectors.series_of(run, "loss")["steps"] == [3, 4]
    assert Run.objects.get(pk=run.pk).params == {"lr": "0.1"}
    # the same refusals and shapes as through Django
    status, body = asgi_post(f"{API}/runs/log-metric", b"{", key)
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    status, body = asgi_post(
        f"{API}/runs/log-metric", json.dumps(metric).encode(), "ptk_no_no"
    )  # pragma: allowlist secret
    assert (status, body["error_code"]) == (401, "UNAUTHENTICATED")
    _, read_only = token_create(user=owner, name="r", scopes=["read"], expires_days=1)
    status, body = asgi_post(f"{API}/runs/log-metric", json.dumps(metric).encode(), read_only)
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
    _, viewer_key = token_create(user=viewer, name="v", scopes=["read", "write"], expires_days=1)
    status, body = asgi_post(f"{API}/runs/log-metric", json.dumps(metric).encode(), viewer_key)
    assert (status, body["error_code"]) == (403, "PERMISSION_DENIED")
    _, stranger_key = token_create(user=stranger, name="s", scopes=["read", "write"], expires_days=1)
    hidden = asgi_post(f"{API}/runs/log-metric", json.dumps(metric).encode(), stranger_key)
    missing = asgi_post(f"{API}/runs/log-metric", json.dumps({**metric, "run_id": "999999"}).encode(), stranger_key)
    assert hidden == missing and hidden[0] == 404 and hidden[1]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, body = asgi_post(
        f"{API}/runs/log-batch", json.dumps({**batch, "params": [{"key": "lr", "value": "9"}]}).encode(), key
    )
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert selectors.series_of(run, "loss")["steps"] == [3, 4]  # nothing from the refused calls


def test_lean_path_knows_its_routes_before_any_django_request():
    """uvicorn may send a log-metric to the lean path before Django ever loads the URLconf."""
    import os
    import subprocess
    import sys

    code = (
        "import django; django.setup()\n"
        "from apps.mlflow_api import fastpath, protocol\n"
        "assert protocol.find_route('mlflow', 'POST', 'runs/log-metric'), 'route table empty'\n"
        "assert protocol.find_route('mlflow', 'POST', 'runs/log-batch'), 'route table empty'\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
