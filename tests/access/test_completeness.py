"""Every HTTP route (with each method its view offers) and every WebSocket route has a matrix row.

Adding a route, or a method to a view, without a row fails here, naming the pattern and method.
Methods: a class-based view's handlers (`http_method_names` it defines, without HEAD and
OPTIONS); a function view's `require_http_methods` list, else GET, plus POST when it reads
``request.POST`` or tests ``request.method``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern

import tests.access
from tests.access.matrix import AccessMatrix

IGNORED_PREFIXES = ("admin/", "static/")
# Methods a view inherits but that are not part of the portal's interface, with the reason.
NOT_OFFERED = {
    ("PUT", "accounts/login/"): "Django's FormView maps PUT to POST; sign-in is a POST form",
}
HTTP = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def _declared_methods(func) -> set[str] | None:
    """The list given to require_http_methods/require_POST/require_GET, found in the wrappers' closures."""
    while func is not None:
        for cell in getattr(func, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if (
                isinstance(value, list | tuple | set)
                and value
                and all(isinstance(v, str) and v.isupper() for v in value)
            ):
                return set(value)
        func = getattr(func, "__wrapped__", None)
    return None


def view_methods(callback) -> set[str]:
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is not None:
        return {m.upper() for m in view_class.http_method_names if m in HTTP and hasattr(view_class, m)}
    declared = _declared_methods(callback)
    if declared is not None:
        return declared & {m.upper() for m in HTTP}
    source = inspect.getsource(inspect.unwrap(callback))
    reads_post = "request.POST" in source or re.search(r"request\.method\s*==", source)
    return {"GET", "POST"} if reads_post else {"GET"}


def http_routes() -> set[tuple[str, str]]:
    routes = set()
    for route, callback in _walk(get_resolver().url_patterns):
        if route.startswith(IGNORED_PREFIXES):
            continue
        for method in view_methods(callback):
            if (method, route) not in NOT_OFFERED:
                routes.add((method, route))
    return routes


def socket_resolver() -> URLResolver:
    from apps.core.realtime import websocket_urlpatterns

    return URLResolver(RegexPattern(r"^/"), websocket_urlpatterns())


def socket_routes() -> set[tuple[str, str]]:
    return {("WS", route) for route, _ in _walk(socket_resolver().url_patterns)}


def matrix_classes() -> list[type[AccessMatrix]]:
    for module in pkgutil.iter_modules(tests.access.__path__):
        if module.name.startswith("test_"):
            importlib.import_module(f"tests.access.{module.name}")
    found, todo = [], list(AccessMatrix.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _dummy(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path.split("?")[0])


def covered() -> tuple[set[tuple[str, str]], list[str]]:
    """(method, route pattern) for every row, and the rows whose path names no route (yet)."""
    routes, unrouted = set(), []
    sockets = socket_resolver()
    for cls in matrix_classes():
        for method, path in cls.rows:
            try:
                match = sockets.resolve(_dummy(path)) if method == "WS" else get_resolver().resolve(_dummy(path))
            except Resolver404:
                unrouted.append(f"{method} {path} ({cls.__name__})")
                continue
            routes.add((method, match.route))
    return routes, unrouted


def test_every_route_and_method_has_a_row():
    rows, _ = covered()
    missing = sorted((http_routes() | socket_routes()) - rows, key=lambda r: (r[1], r[0]))
    assert not missing, "Routes without an access-matrix row (add one to a class in tests/access/):\n" + "\n".join(
        f"  {method} /{route}" for method, route in missing
    )


def test_function_views_are_introspected():
    """The method detection itself: a require_POST view offers POST only; a form view GET and POST."""
    from apps.catalog import views

    assert view_methods(views.model_share) == {"POST"}
    assert view_methods(views.model_edit) == {"GET", "POST"}
    assert view_methods(views.model_detail) == {"GET"}


def _unlisted(request):  # pragma: no cover - never called
    raise AssertionError


urlpatterns: list = []


def test_a_route_without_a_row_is_reported(settings):
    global urlpatterns
    from django.urls import path

    from portal.urls import urlpatterns as portal_urlpatterns

    urlpatterns = [*portal_urlpatterns, path("api/v1/unlisted", _unlisted)]
    settings.ROOT_URLCONF = __name__
    assert ("GET", "api/v1/unlisted") in http_routes() - covered()[0]
