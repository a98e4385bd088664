"""The errors the domain raises, one class per answer, and nothing about HTTP frameworks.

Services and selectors raise these (or Django's `ValidationError({field: [messages]})` for field
errors); they never import `rest_framework`, raise `Http404` or build a `Response`. Each boundary
maps them once:

- the API: `apps.core.api.errors.exception_handler` -> `{"detail": ...}` with `status`;
- pages: `NotFound` and `Forbidden` are Django's `Http404` / `PermissionDenied`, so Django shows
  the portal's 404 and 403 pages; `apps.core.middleware.DomainErrorMiddleware` shows the rest;
- the lean ASGI paths: `error_body(exc)`;
- tasks and commands: the message (`str(exc)`) goes to the job's error field or stderr.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404

log = logging.getLogger(__name__)


class DomainError(Exception):
    """Base of the portal's own errors; `status` is the HTTP status the boundary answers with."""

    status = 400
    default_detail = "The request is not valid."

    def __init__(self, detail: str | None = None):
        self.detail = detail or self.default_detail
        super().__init__(self.detail)

    def __str__(self) -> str:
        return str(self.detail)


class NotFound(DomainError, Http404):
    """Missing, or not visible to the caller: one answer for both, so strangers learn nothing."""

    status = 404
    default_detail = "Not found."


class Forbidden(DomainError, PermissionDenied):
    """Visible to the caller but not allowed (role, object permission, token scope)."""

    status = 403
    default_detail = "You do not have permission to do this."


class Conflict(DomainError):
    """A transition the object's current state does not allow."""

    status = 409
    default_detail = "This change is not allowed in the object's current state."


class ResidencyError(Forbidden):
    """Data pinned to a region would be stored, read, trained, served or exported outside it
    (apps/core/residency.py; every refusal is audited as residency.refused)."""

    default_detail = "This data is pinned to another region and cannot be used here."


class RegionMismatch(Conflict):
    """Two objects pinned to different regions cannot be combined (a run of one region registered
    into a model of another, a version served on an endpoint of another region)."""

    default_detail = "These objects are pinned to different regions and cannot be combined."


class TooLarge(DomainError):
    """A body, upload or row count over its limit."""

    status = 413
    default_detail = "The request is larger than this endpoint accepts."


class Throttled(DomainError):
    """Over a rate limit; nothing was done. `retry_after` is in seconds."""

    status = 429
    default_detail = "Too many requests; slow down."

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None):
        super().__init__(detail)
        self.retry_after = retry_after


class IntegrityFailure(DomainError):
    """A stored blob failed its integrity check: the server's fault, and none of its bytes leave."""

    status = 500
    default_detail = "A stored artifact failed its integrity check; none of it was sent. Tell a platform admin."


def error_body(exc: DomainError) -> tuple[int, dict]:
    """Status and JSON body for `exc`, as every boundary without DRF answers (shared/API.md).
    A server-side failure (5xx) answers with its class's message, never internal details
    (storage keys, paths); those go to the log."""
    if exc.status >= 500:
        log.error("%s: %s", type(exc).__name__, exc.detail)
        return exc.status, {"detail": type(exc).default_detail}
    return exc.status, {"detail": str(exc.detail)}
