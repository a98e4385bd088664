"""The lean ASGI path for the MLflow client's hottest calls, `runs/log-metric` and `runs/log-batch`
with a token (routed ahead of Django in portal/asgi.py; browser sessions go through Django).

Training scripts log one metric per request; through Django's whole middleware chain (sessions,
CSRF, messages, clickjacking, axes, CSP...) that chain costs as much as the logging itself. This
path skips the chain, not the rules: the same token check and scope (views.token_caller, allow:
the per-user API rate included), the same JSON parsing and handlers (runs.py, which call the
experiments services: permissions, validation, audit, live charts), the same error shapes and
platform metrics. It runs the handler in one hop on the web threads (apps/core/asgi_handler.py),
between Django's request_started and request_finished signals, so database connections are
handled exactly as for a Django request.
"""

from __future__ import annotations

import logging
import time

from asgiref.sync import sync_to_async
from auditlog.context import set_actor
from django.core import signals
from django.core.exceptions import ValidationError

from apps.core import metrics
from apps.core.asgi_handler import web_executor
from apps.core.errors import DomainError
from apps.core.leanpath import Reply, has_token, lean_route, read_body, send_json
from apps.mlflow_api import urls  # noqa: F401  (imports the handlers: fills the route table before any Django request)
from apps.mlflow_api.protocol import MLFLOW, Call, MlflowError, find_route, mlflow_error_from
from apps.mlflow_api.views import allow, json_params, token_caller

PREFIX = "/api/2.0/mlflow/"
CALLS = ("runs/log-metric", "runs/log-batch")
PATHS = frozenset(PREFIX + call for call in CALLS)
ROUTE = "/^api/2\\.0/mlflow(?:/(?P<path>.*))?$"  # the route pattern Django counts these calls under (platform metrics)
MAX_BODY = 8 << 20  # a 1,000-point batch is ~100 KB; MLflow's own limit on a request is far above it
log = logging.getLogger(__name__)


def handles(scope) -> bool:
    """The two logging calls, POST, with a token (sessions and everything else: Django)."""
    if scope.get("type") != "http" or scope.get("method") != "POST" or scope.get("path") not in PATHS:
        return False
    return has_token(scope)


def wrap(app):
    """`"http": mlflow_fastpath.wrap(...)` in portal/asgi.py."""
    return lean_route(handles, handle, app)


def _error(exc: Exception) -> tuple[int, dict, list]:
    error = mlflow_error_from(exc)
    headers = []
    if getattr(error, "retry_after", None) is not None:
        headers.append((b"retry-after", str(int(error.retry_after)).encode()))
    return error.status, {"error_code": error.error_code, "message": error.message}, headers


def _answer(path: str, header: str, client: str, raw: bytes) -> tuple[int, dict, list]:
    """Run the call as Django would (connections, audit context), on a web thread."""
    signals.request_started.send(sender=__name__)  # reset_queries, close_old_connections (tests: caches)
    try:
        with set_actor(None, remote_addr=client):
            route_, _ = find_route(MLFLOW, "POST", path[len(PREFIX) :])
            user, token = token_caller(header)
            allow(route_, "POST", user, token)
            return 200, route_.handler(Call(request=None, user=user, token=token, params=json_params(raw))), []
    except (MlflowError, DomainError, ValidationError) as exc:
        return _error(exc)
    except Exception:  # a bug, not the client's fault: MLflow's shape, never uvicorn's plain text
        log.exception("MLflow lean path %s failed", path)
        return 500, {"error_code": "INTERNAL_ERROR", "message": "The portal failed to answer; the error is logged."}, []
    finally:
        signals.request_finished.send(sender=__name__)  # this thread's connection back (pool) or kept (SQLite)


async def handle(scope, receive, send) -> None:
    started = time.perf_counter()
    path = scope["path"]
    header = next((v for k, v in scope.get("headers") or () if k == b"authorization"), b"").decode("latin-1")
    client = (scope.get("client") or ("",))[0]
    try:
        raw = await read_body(receive, MAX_BODY, "The request body is larger than the portal accepts.")
    except Reply as reply:
        code = "INVALID_PARAMETER_VALUE"
        status, body, headers = reply.status, {"error_code": code, "message": reply.body.get("detail", "")}, []
    else:
        status, body, headers = await sync_to_async(_answer, thread_sensitive=False, executor=web_executor())(
            path, header, client, raw
        )
    await send_json(send, status, body, headers)
    metrics.HTTP.observe((ROUTE, "POST", status), time.perf_counter() - started)
