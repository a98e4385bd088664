"""`{% row_url "app:name" arg ... %}`: the `{% url %}` of a list's rows, one `reverse()` per route.

A list page that wrote `{% url %}` in its loop walked the resolver once per row (issue #18: lists
cost the same at 5 rows as at 50). Rows' URLs differ only in their arguments, so the route is
reversed once per process with digit placeholders and each row fills in its own values. What
each argument position takes without `reverse()` is probed then too (digits only, or also letters,
`.` and `~`, or `/`). A value outside that (anything Django would quote, or that the route's
converter might refuse) goes through `reverse()` as before, so the HTML, and the errors, are
exactly those of `{% url %}`; tests/core/test_list_costs.py compares the two on every route.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django import template
from django.urls import NoReverseMatch, get_script_prefix, reverse

register = template.Library()

_MARK = "9{}0370813"  # one placeholder per argument position
_DIGITS = re.compile(r"[0-9]+\Z")
_SLUG = re.compile(r"[-A-Za-z0-9_]+\Z")
_WORD = re.compile(r"[-A-Za-z0-9_.~]+\Z")  # unquoted by reverse(); str takes it, slug does not
_PATH = re.compile(r"[-A-Za-z0-9_.~]+(/[-A-Za-z0-9_.~]+)*\Z")  # no empty, leading or trailing segment


def _takes(name: str, marks: list[str], i: int, probe: str) -> bool:
    try:
        reverse(name, args=[*marks[:i], probe + marks[i], *marks[i + 1 :]])
    except NoReverseMatch:
        return False
    return True


@lru_cache(maxsize=512)
def _route(name: str, count: int, script_prefix: str) -> tuple[tuple[str, ...], tuple[re.Pattern, ...]] | None:
    """The route's text around its `count` arguments and what each position takes without
    `reverse()`; None (always reverse) when the placeholders do not come back once each, in order."""
    marks = [_MARK.format(i) for i in range(count)]
    try:
        url = reverse(name, args=marks)
    except NoReverseMatch:
        return None
    found = re.findall("|".join(marks), url) if marks else []
    if found != marks or any(url.count(mark) != 1 for mark in marks):
        return None
    parts = tuple(re.split("|".join(marks), url)) if marks else (url,)
    accepts = []
    for i in range(count):
        if not _takes(name, marks, i, "x"):
            accepts.append(_DIGITS)
        elif not _takes(name, marks, i, "x.~"):
            accepts.append(_SLUG)
        elif _takes(name, marks, i, "x/"):
            accepts.append(_PATH)
        else:
            accepts.append(_WORD)
    return parts, tuple(accepts)


@register.simple_tag
def row_url(name: str, *args) -> str:
    """`{% url name args %}` for a row, reversing the route once per process."""
    route = _route(name, len(args), get_script_prefix())
    values = [str(arg) for arg in args]
    if route is None or not all(ok.match(value) for ok, value in zip(route[1], values, strict=True)):
        return reverse(name, args=args)
    parts = route[0]
    return "".join(part + value for part, value in zip(parts, values, strict=False)) + parts[-1]
