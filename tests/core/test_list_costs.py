"""Every list (API endpoint and page) costs the same at 5 rows as at 50: queries and `reverse()` calls.

The registry (tests/list_rows.py) names each list route and says how to make its rows (`tests/listcost.py`
measures). The completeness test finds the list routes by themselves (API views that list or
paginate, pages that paginate or loop over their `page`/`rows`), so a new list without a registry
row fails here, naming it. Pages whose rows sit in other loops (a profile's tokens, a model's
versions, a run's artifacts, a sweep's trials) are registered by hand. Per-row URLs in templates use
`{% row_url %}` (apps/core/templatetags/portal_urls.py), which `test_row_url_is_reverse` checks."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.paginator import Paginator
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.generics import ListAPIView

from tests.conftest import api_client_for, make_user, page_client_for
from tests.list_rows import NOT_ROW_LISTS, REGISTRY
from tests.listcost import list_cost

pytestmark = pytest.mark.django_db


# --- discovery -----------------------------------------------------------------------------------


def _walk(patterns, prefix="", namespace=()):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = (*namespace, pattern.namespace) if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield prefix + str(pattern.pattern), ":".join((*namespace, pattern.name)), pattern.callback


TEMPLATES = Path(settings.BASE_DIR) / "templates"
ROW_LOOP = re.compile(r"{%\s*for\s+[^%]+?\s+in\s+(page|rows|page\.object_list)\s*%}")
RENDERED = re.compile(r"""["']([\w/]+\.html)["']""")


def _source(obj) -> str:
    try:
        return inspect.getsource(inspect.unwrap(obj))
    except (OSError, TypeError):
        return ""


def _api_lists(view_class) -> bool:
    from rest_framework.mixins import ListModelMixin

    if issubclass(view_class, ListModelMixin):
        return True
    get = getattr(view_class, "get", None)
    source = _source(get) if get is not None else ""
    return "paginate" in source or "many=True" in source


def _page_lists(callback) -> bool:
    source = _source(callback)
    if "Paginator(" in source:
        return True
    for name in RENDERED.findall(source):
        template = TEMPLATES / name
        if template.is_file() and ROW_LOOP.search(template.read_text()):
            return True
    return False


def list_routes() -> set[str]:
    found = set()
    for route, name, callback in _walk(get_resolver().url_patterns):
        if route.startswith(("admin/", "static/")):
            continue
        view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        if route.startswith("api/v1/"):
            if view_class is not None and _api_lists(view_class):
                found.add(name)
        elif view_class is None and _page_lists(callback):
            found.add(name)
    return found - set(NOT_ROW_LISTS)


def test_every_list_route_has_a_registry_row():
    missing = sorted(list_routes() - set(REGISTRY))
    assert not missing, "List routes without a row in tests/core/test_list_costs.py REGISTRY:\n" + "\n".join(
        f"  {name}" for name in missing
    )


def test_every_registry_row_names_a_route():
    names = {name for _, name, _ in _walk(get_resolver().url_patterns)}
    assert not sorted((set(REGISTRY) | set(NOT_ROW_LISTS)) - names)


def test_discovery_finds_api_lists_and_paginated_pages():
    found = list_routes()
    assert {"api-v1:catalog:model-list", "api-v1:experiments:run-metric-keys", "training:job-list"} <= found
    assert "training:queues" in found  # loops over its `rows`, no Paginator
    assert "catalog:model-edit" not in found and "api-v1:catalog:model-detail" not in found


class _UnlistedApi(ListAPIView):  # pragma: no cover - never called
    pass


def _unlisted_page(request):  # pragma: no cover - never called
    return Paginator([], 10).get_page(1)


urlpatterns: list = []


def test_a_list_route_without_a_registry_row_is_reported(settings):
    global urlpatterns
    from django.urls import path

    from portal.urls import urlpatterns as portal_urlpatterns

    urlpatterns = [
        *portal_urlpatterns,
        path("api/v1/unlisted/", _UnlistedApi.as_view(), name="unlisted-api"),
        path("unlisted/", _unlisted_page, name="unlisted-page"),
    ]
    settings.ROOT_URLCONF = __name__
    assert {"unlisted-api", "unlisted-page"} <= list_routes() - set(REGISTRY)


def test_row_url_is_reverse(owner):
    """`{% row_url %}` (apps/core/templatetags/portal_urls.py) gives what `reverse()` gives, or raises as it does."""
    from django.urls import NoReverseMatch, get_script_prefix, set_script_prefix

    from apps.core.templatetags.portal_urls import row_url

    values = [
        7,
        "7",
        "credit-risk",
        "a_b",
        "a.b",
        "~x",
        "a b",
        "x/y",
        "a/b.c",
        "a//b",
        "/a",
        "a/",
        "ü",
        "50%",
        "",
        True,
        -1,
    ]
    checked, prefix = 0, get_script_prefix()
    try:
        for script_prefix in ("/", "/portal/"):
            set_script_prefix(script_prefix)
            for route, name, _ in _walk(get_resolver().url_patterns):
                count = route.count("<")
                if route.startswith("admin/") or count > 2:
                    continue
                cases = [[v] * count for v in values] + ([["credit-risk", 3], [3, "a b"]] if count == 2 else [])
                for args in cases:
                    try:
                        expected = reverse(name, args=args)
                    except NoReverseMatch:
                        with pytest.raises(NoReverseMatch):
                            row_url(name, *args)
                        continue
                    assert row_url(name, *args) == expected, (name, args)
                    checked += 1
    finally:
        set_script_prefix(prefix)
    assert checked > 200


# --- the measurement -----------------------------------------------------------------------------


@pytest.fixture
def world(settings, monkeypatch, tmp_path, owner, collaborator, team, auditor, admin_user):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.FEATURE_STORE_ROOT = tmp_path / "features"
    # 50 rows on one page: the question is what a row costs, and a first page that holds all its
    # rows skips its COUNT (apps/core/paginator.py), which a second page would add back.
    for module in [m for name, m in sys.modules.items() if re.fullmatch(r"apps\.\w+\.views(\.\w+)?", name)]:
        if hasattr(module, "PAGE_SIZE"):
            monkeypatch.setattr(module, "PAGE_SIZE", 100)
    return SimpleNamespace(
        owner=owner, collaborator=collaborator, team=team, auditor=auditor, admin=admin_user,
        approver=make_user("approver1", "approvers"),
    )  # fmt: skip


def _size(response) -> int:
    if response["Content-Type"].startswith("application/json"):
        body = response.json()
        return body["count"] if isinstance(body, dict) and "count" in body else len(body)
    return len(response.content)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_list_cost_does_not_grow_with_rows(world, name):
    rows = REGISTRY[name]
    user = getattr(world, rows.persona)
    rows.make(world, 0, 5)
    url = reverse(name, args=rows.args(world)) + (rows.query(world) if callable(rows.query) else rows.query)
    client = api_client_for(user) if name.startswith("api-v1:") else page_client_for(user)
    # Each measurement follows a warm-up GET: per-process caches (content types, roles), the token's
    # per-minute stamp and the caller cache, which some row factories (tokens, shares) invalidate.
    warm = client.get(url)
    assert warm.status_code == 200, warm.content[:500]
    at_5 = list_cost(client, url)
    rows.make(world, 5, 50)
    url = reverse(name, args=rows.args(world)) + (rows.query(world) if callable(rows.query) else rows.query)
    client.get(url)
    at_50 = list_cost(client, url)
    shown = _size(client.get(url))
    assert at_5.status == at_50.status == 200
    assert at_50 == at_5, f"{url}: {at_5} at 5 rows, {at_50} at 50"
    assert shown > _size(warm), f"{url}: the 45 new rows did not show"
