"""Log lines as one JSON object each (`LOG_FORMAT=json`, portal/settings/ LOGGING), for log
shippers that index fields rather than parse text.

Fields: `time` (ISO 8601 UTC, milliseconds), `level`, `logger`, `message`, `process`; when the line
was written while a request was being answered (`bind`, called by
apps.core.metrics.RequestMetricsMiddleware) or names one (`extra={"request": request}`, as
`django.request` does): `request_id` (the caller's `X-Request-ID`, else one made for the request),
`path`, and `user` (the user's id, never the name: log files outlive a subject's erasure);
`exc_info` and `stack_info` as text; `context_error` (the exception's class name) when the
request's fields could not be read. Extra fields named `request_id`, `user` or `path` win.

Loaded by logging.config before the apps are ready, so it imports nothing of the portal's.
"""

from __future__ import annotations

import json
import logging
import os
import re
from contextvars import ContextVar, Token
from datetime import UTC, datetime

from django.utils.functional import empty

_current: ContextVar = ContextVar("portal_log_request", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
FIELDS = ("request_id", "user", "path")


def bind(request) -> Token:
    """Log lines written until `unbind` carry this request's fields (one ContextVar set: cheap)."""
    return _current.set(request)


def unbind(token: Token) -> None:
    _current.reset(token)


def request_id(request) -> str:
    """The caller's X-Request-ID when it is a plain token, else one made once for this request."""
    found = getattr(request, "_portal_request_id", None)
    if found is None:
        given = getattr(request, "META", {}).get("HTTP_X_REQUEST_ID", "")
        found = given if _REQUEST_ID.match(given) else os.urandom(8).hex()
        try:
            request._portal_request_id = found
        except AttributeError:  # an object that takes no attributes: a new id each time
            pass
    return found


def _user_id(request):
    """The signed-in user's id if the request already knows it; never a query from a log line
    (Django's `request.user` is lazy and would read the session)."""
    user = getattr(request, "__dict__", {}).get("user")
    wrapped = getattr(user, "_wrapped", None) if user is not None else None
    if wrapped is not None:
        user = None if wrapped is empty else wrapped
    if user is None:
        user = getattr(request, "_cached_user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def request_fields(request) -> dict:
    fields = {"request_id": request_id(request)}
    path = getattr(request, "path", None)
    if path:
        fields["path"] = path
    user = _user_id(request)
    if user is not None:
        fields["user"] = user
    return fields


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; never raises (a value JSON cannot hold is written as text)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        request = getattr(record, "request", None)
        if request is None or not hasattr(request, "META"):
            request = _current.get()
        if request is not None:
            try:
                entry.update(request_fields(request))
            except Exception as exc:  # a log line must never fail because of its context: say why it has none
                entry["context_error"] = type(exc).__name__
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
