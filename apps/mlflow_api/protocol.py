"""The MLflow-compatible API's plumbing: errors in MLflow's shape, the call object (typed
parameter readers) and the route table. The dispatcher that uses them (authentication, token
scope, rate, CSRF, JSON parsing) is views.py, and fastpath.py for the two hottest calls.

Handlers live in experiments.py, runs.py, artifacts.py, logged_models.py and registry.py; each
registers itself with `@route(method, path)` and returns a dict (sent as JSON 200) or a response.
Handlers call the portal's services and selectors, which raise apps.core.errors domain errors; the
dispatcher maps those to MLflow's `{"error_code", "message"}` once (`mlflow_error_from`).
Nothing here stores data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core.errors import DomainError, Forbidden, IntegrityFailure, NotFound, Throttled, TooLarge

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
STATUS_BY_CODE = {
    "RESOURCE_DOES_NOT_EXIST": 404,
    "INVALID_PARAMETER_VALUE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_STATE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "ENDPOINT_NOT_FOUND": 404,
    "INTERNAL_ERROR": 500,
}
MLFLOW = "mlflow"  # /api/2.0/mlflow/... and /ajax-api/2.0/mlflow/...
ARTIFACTS = "mlflow-artifacts"  # /api/2.0/mlflow-artifacts/... (the artifact proxy)


class MlflowError(Exception):
    """An answer in MLflow's error shape: `{"error_code": code, "message": message}` with `status`."""

    def __init__(self, error_code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.status = status if status is not None else STATUS_BY_CODE.get(error_code, 400)

    def response(self) -> JsonResponse:
        response = JsonResponse({"error_code": self.error_code, "message": self.message}, status=self.status)
        if getattr(self, "retry_after", None) is not None:
            response["Retry-After"] = str(int(self.retry_after))
        return response


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def mlflow_error_from(exc: Exception) -> MlflowError:
    """The one mapping of the portal's domain errors (and Django's ValidationError) to MLflow's."""
    if isinstance(exc, MlflowError):
        return exc
    if isinstance(exc, NotFound):
        return MlflowError("RESOURCE_DOES_NOT_EXIST", str(exc))
    if isinstance(exc, Forbidden):
        return MlflowError("PERMISSION_DENIED", str(exc))
    if isinstance(exc, Throttled):
        error = MlflowError("REQUEST_LIMIT_EXCEEDED", str(exc))
        error.retry_after = exc.retry_after
        return error
    if isinstance(exc, TooLarge):
        return MlflowError("INVALID_PARAMETER_VALUE", str(exc), status=413)
    if isinstance(exc, IntegrityFailure):
        return MlflowError("INTERNAL_ERROR", IntegrityFailure.default_detail)
    if isinstance(exc, DomainError):  # Conflict and the rest: the object's state forbids it now
        return MlflowError("INVALID_STATE" if exc.status == 409 else "INVALID_PARAMETER_VALUE", str(exc))
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            parts = [f"{name}: {' '.join(msgs)}" for name, msgs in exc.message_dict.items()]
            return invalid("; ".join(parts))
        return invalid(" ".join(exc.messages))
    raise TypeError(f"not a domain error: {exc!r}")


@contextmanager
def domain_errors_mapped() -> Iterator[None]:
    """Raise domain errors inside the block as MlflowError (the dispatcher does this for every handler)."""
    try:
        yield
    except (DomainError, ValidationError) as exc:
        raise mlflow_error_from(exc) from exc


@dataclass
class Call:
    """One request to a handler: who calls, with which token (None for a browser session), and the
    parameters (the JSON body merged over the query string; GET: repeated keys give a list)."""

    request: HttpRequest | None  # None on the lean path (fastpath.py: log-metric, log-batch)
    user: object
    token: object | None
    params: dict
    subpath: str = ""  # for prefix routes (the artifact proxy): what follows the registered path
    extra: dict = field(default_factory=dict)

    def _get(self, name: str, required: bool, default):
        value = self.params.get(name)
        if value is None or value == "":
            if required:
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{name}'. See the API docs."
                )
            return default, True
        return value, False

    def str_param(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value, missing = self._get(name, required, default)
        if missing:
            return value
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool | dict | list):
            raise invalid(f"Invalid value {json.dumps(value)[:100]} for parameter '{name}': expected a string.")
        return clean_text(str(value), name)

    def int_param(self, name: str, *, required: bool = False, default: int | None = None) -> int | None:
        value, missing = self._get(name, required, default)
        if missing:
            return value
        return to_int(value, name)

    def float_param(self, name: str, *, required: bool = False, default: float | None = None) -> float | None:
        value, missing = self._get(name, required, default)
        if missing:
            return value
        return to_float(value, name)

    def bool_param(self, name: str, *, default: bool = False) -> bool:
        value = self.params.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(f"Invalid value {json.dumps(value)[:100]} for parameter '{name}': expected a boolean.")

    def list_param(self, name: str, *, required: bool = False, default: list | None = None) -> list:
        value, missing = self._get(name, required, default)
        if missing:
            return [] if value is None else value
        return value if isinstance(value, list) else [value]


def clean_text(text: str, name: str) -> str:
    """Databases store neither NUL characters nor lone surrogates (JSON "\\ud800"): refused here,
    as INVALID_PARAMETER_VALUE, before any query sees them."""
    if "\x00" in text:
        raise invalid(f"Invalid value for parameter '{name}': NUL characters are not allowed.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(f"Invalid value for parameter '{name}': not valid Unicode text.") from None
    return text


def to_int(value, name: str) -> int:
    """An int64 from a JSON number or a string of digits (proto3 JSON spells int64 both ways)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        raise invalid(f"Invalid value {value!r} for parameter '{name}': expected an integer.")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit() or len(text) > 20:
            raise invalid(f"Invalid value {value[:100]!r} for parameter '{name}': expected an integer.")
        value = int(text)
    if not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
        raise invalid(f"Invalid value {str(value)[:100]} for parameter '{name}': expected a 64-bit integer.")
    return value


def to_float(value, name: str) -> float:
    """A double from a JSON number or a string (NaN and infinities as MLflow spells them)."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(f"Invalid value {json.dumps(value)[:100]} for parameter '{name}': expected a number.")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise invalid(f"Invalid value {str(value)[:100]!r} for parameter '{name}': expected a number.") from None
    if isinstance(value, int) and math.isinf(number):
        raise invalid(f"Invalid value for parameter '{name}': the number is too large.")
    return number


# --- the route table --------------------------------------------------------------------------

Handler = Callable[[Call], "dict | HttpResponse"]


@dataclass(frozen=True)
class Route:
    handler: Handler
    scope: str | tuple | None
    prefix: bool


ROUTES: dict[tuple[str, str, str], Route] = {}  # (api, METHOD, path) -> route


def route(method: str, path: str, *, scope: str | tuple | None = None, api: str = MLFLOW, prefix: bool = False):
    """Register a handler for `METHOD path` (path relative to /api/2.0/<api>/, no leading slash).
    `scope`: the token scope wanted (default read for GET, write otherwise). `prefix=True` matches
    every path that starts with `path` (the artifact proxy's `artifacts/<path>`), the rest given
    to the handler as `call.subpath`."""

    def register(handler: Handler) -> Handler:
        key = (api, method.upper(), path.strip("/"))
        if key in ROUTES:
            raise RuntimeError(f"MLflow route registered twice: {key}")
        ROUTES[key] = Route(handler, scope, prefix)
        return handler

    return register


def find_route(api: str, method: str, path: str) -> tuple[Route, str] | None:
    path = path.strip("/")
    found = ROUTES.get((api, method, path))
    if found is not None:
        return found, ""
    for (r_api, r_method, r_path), candidate in ROUTES.items():
        if candidate.prefix and r_api == api and r_method == method and path.startswith(f"{r_path}/"):
            return candidate, path[len(r_path) + 1 :]
    return None


def methods_for(api: str, path: str) -> list[str]:
    path = path.strip("/")
    return sorted(
        {m for (a, m, p), r in ROUTES.items() if a == api and (p == path or (r.prefix and path.startswith(f"{p}/")))}
    )
