"""The one Django view under /api/2.0/mlflow/, /ajax-api/2.0/mlflow/ and the artifact proxy: it finds
the handler in protocol.ROUTES, authenticates, checks the token scope and the per-user rate, parses
the parameters and maps every error to MLflow's shape. Nothing under these prefixes answers a 500
with Django's page: an unexpected exception is logged and answered as INTERNAL_ERROR JSON.
"""

from __future__ import annotations

import json
import logging

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from apps.accounts.tokens import find_token, request_token_remember
from apps.core import ratelimit
from apps.core.audit import attribute_request_to
from apps.core.errors import DomainError
from apps.core.permissions import is_active_user, scope_for_method, token_allows
from apps.mlflow_api.protocol import ARTIFACTS, MLFLOW, Call, MlflowError, find_route, invalid, mlflow_error_from

log = logging.getLogger(__name__)
TOKEN_KEYWORDS = ("bearer", "token")
BODY_METHODS = ("POST", "PATCH", "DELETE")


def _not_found(request: HttpRequest) -> MlflowError:
    return MlflowError(
        "ENDPOINT_NOT_FOUND",
        f"No API endpoint for {request.method} {request.path}. The supported calls are listed in docs/MLFLOW.md.",
    )


def token_caller(header: str) -> tuple[object, object] | None:
    """(user, token) for `Authorization: Bearer|Token <key>`; None for another scheme;
    UNAUTHENTICATED for a key that is not an active token. Names them in the audit context."""
    keyword, _, key = header.partition(" ")
    if keyword.lower() not in TOKEN_KEYWORDS:
        return None
    token = find_token(key.strip()) if key.strip() else None
    if token is None:
        raise MlflowError("UNAUTHENTICATED", "Invalid, expired or revoked token.")
    attribute_request_to(token.user)  # the audit middleware ran before we knew who this is
    request_token_remember(token)
    return token.user, token


def allow(route_, method: str, user, token) -> None:
    """The token's scope for the route, then one request of the caller's API rate."""
    scope = route_.scope or scope_for_method(method)
    if not token_allows(token, scope):
        wanted = scope if isinstance(scope, str) else " or ".join(scope)
        raise MlflowError("PERMISSION_DENIED", f"This token lacks the '{wanted}' scope; create one with it.")
    try:
        ratelimit.check(user.pk)
    except ratelimit.Throttled as exc:
        error = MlflowError("REQUEST_LIMIT_EXCEEDED", str(exc))
        error.retry_after = exc.wait
        raise error from None


def json_params(raw: bytes) -> dict:
    """The JSON object of a request body ({} when empty); INVALID_PARAMETER_VALUE otherwise."""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid("Malformed JSON in the request body.") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def _authenticate(request: HttpRequest) -> tuple[object, object | None]:
    """(user, token) from `Authorization: Bearer|Token <key>`, else the browser session's user."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    caller = token_caller(header) if header else None
    if caller is not None:
        return caller
    user = getattr(request, "user", None)
    if not is_active_user(user):
        raise MlflowError(
            "UNAUTHENTICATED",
            "Authentication required: set MLFLOW_TRACKING_TOKEN to a portal API token (sent as 'Bearer').",
        )
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if rejected is not None:
            raise MlflowError("PERMISSION_DENIED", "CSRF verification failed for this browser session.")
    return user, None


def _params(request: HttpRequest, parse_body: bool) -> dict:
    params: dict = {}
    for name in request.GET:
        values = request.GET.getlist(name)
        params[name] = values[0] if len(values) == 1 else values
    if not parse_body or request.method not in BODY_METHODS:
        return params
    try:
        raw = request.body
    except RequestDataTooBig:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE", "The request body is larger than the portal accepts.", 413
        ) from None
    params.update(json_params(raw))
    return params


def _dispatch(request: HttpRequest, api: str, path: str) -> HttpResponse:
    found = find_route(api, request.method, path)
    if found is None:
        raise _not_found(request)
    route_, subpath = found
    user, token = _authenticate(request)
    allow(route_, request.method, user, token)
    call = Call(request=request, user=user, token=token, params=_params(request, api == MLFLOW), subpath=subpath)
    result = route_.handler(call)
    if isinstance(result, HttpResponseBase):  # StreamingHttpResponse too
        return result
    return JsonResponse(result, json_dumps_params={"separators": (",", ":")})


def _answer(request: HttpRequest, api: str, path: str) -> HttpResponse:
    try:
        return _dispatch(request, api, path)
    except (MlflowError, DomainError, ValidationError) as exc:
        return mlflow_error_from(exc).response()
    except Exception:  # never Django's 500 page under these prefixes: MLflow's shape, details in the log
        log.exception("MLflow API %s %s failed", request.method, request.path)
        return MlflowError("INTERNAL_ERROR", "The portal failed to answer this call; the error is logged.").response()


@csrf_exempt  # token callers need no CSRF token; browser sessions are checked in _authenticate
@login_not_required  # answers 401 JSON itself
def mlflow_endpoint(request: HttpRequest, path: str = "") -> HttpResponse:
    return _answer(request, MLFLOW, path)


@csrf_exempt
@login_not_required
def artifacts_endpoint(request: HttpRequest, path: str = "") -> HttpResponse:
    return _answer(request, ARTIFACTS, path)


@csrf_exempt
@login_not_required
def mlflow3_endpoint(request: HttpRequest, path: str = "") -> HttpResponse:
    """MLflow 3's newer calls (logged models, traces, ...) are not supported: MLflow's 404 shape."""
    return _not_found(request).response()
