"""The page side of the decision point: one decorator for pages that need a role's right.

    @page_requires("add", TrainingJob)
    def job_launch(request, name): ...

It asks `apps.core.permissions.require` before the view runs, so a user whose roles lack the
right gets the portal's 403 page (with what to do) and the view never builds a form it cannot
use. Pages about one object get it through the kind's `_for(user, key, action)` selector, which
asks the same point (404 for strangers, 403 for viewers). Sign-in is the login middleware's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.db import models

from apps.core.permissions import require


def page_requires(action: str, model: type[models.Model], *, on_method: str | None = None) -> Callable:
    """Require the role's `action` right on `model` before the page runs (only for requests with
    method `on_method` when given, e.g. "POST" for a list page that also creates)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if on_method is None or request.method == on_method:
                require(request.user, action, model)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
