"""Page-side middleware: deny by default, and the one mapping of domain errors to pages.

`NotFound` and `Forbidden` are Django's `Http404` / `PermissionDenied`, so Django shows the
portal's 404 and 403 pages for them. The other domain errors (409, 413, 429, integrity) and a
field-less `ValidationError` raised by a service reached from a page get the portal's error page
with their status and message; views with forms catch `ValidationError` themselves to show it on
the form (`apps.core.forms.apply_validation_error`). API paths are DRF's (apps/core/api/errors.py).
"""

from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.core.exceptions import ValidationError
from django.http import HttpResponsePermanentRedirect
from django.shortcuts import render
from django.urls import Resolver404, resolve

from apps.core.errors import DomainError, Forbidden, NotFound, Throttled

# The API answers 401 JSON through DRF; the admin has its own login; static files and the
# health probe are public by design (API.md).
PUBLIC_PREFIXES = ("/api/", "/admin/", "/static/", "/healthz", "/favicon.ico")
TITLES = {409: "Not possible right now", 413: "Too large", 429: "Too many requests", 500: "Integrity check failed"}


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Deny by default: every browser page needs a signed-in user unless marked otherwise."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(PUBLIC_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class ApiSlashMiddleware:
    """One trailing-slash rule for the API (shared/API.md): the spelling in the URLconf is canonical
    (collections and documents end with `/`; actions, downloads, `me` and named sub-resources do
    not), and under `/api/v1/` the other spelling answers **308** to it, which keeps the method and
    the body, for every method. Pages keep Django's APPEND_SLASH."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code != 404 or not request.path_info.startswith("/api/v1/"):
            return response
        path, urlconf = request.path_info, getattr(request, "urlconf", None)
        other = path[:-1] if path.endswith("/") else f"{path}/"
        # Only a path that matches no route: a view's own 404 (a stranger asking for an object)
        # must stay a 404, or the redirect would tell them the object exists.
        if _resolves(path, urlconf) or not _resolves(other, urlconf):
            return response
        location = f"{request.META.get('SCRIPT_NAME', '')}{other}"
        if request.META.get("QUERY_STRING"):
            location = f"{location}?{request.META['QUERY_STRING']}"
        return HttpResponsePermanentRedirect(location, preserve_request=True)  # 308


def _resolves(path: str, urlconf) -> bool:
    try:
        resolve(path, urlconf)
    except Resolver404:
        return False
    return True


class DomainErrorMiddleware:
    """Show a domain error raised while rendering a page as the portal's error page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if request.path.startswith("/api/") or isinstance(exception, (NotFound, Forbidden)):
            return None
        if isinstance(exception, DomainError):
            status = exception.status
            response = render(
                request, "error.html", {"title": TITLES.get(status, "Not possible"), "message": exception.detail},
                status=status,
            )  # fmt: skip
            if isinstance(exception, Throttled) and exception.retry_after is not None:
                response["Retry-After"] = str(int(exception.retry_after))
            return response
        if isinstance(exception, ValidationError):
            return render(
                request, "error.html", {"title": "Check your input", "message": " ".join(exception.messages)},
                status=400,
            )  # fmt: skip
        return None
