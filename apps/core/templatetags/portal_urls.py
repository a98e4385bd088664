"""`{% row_url "app:name" arg ... %}`: the `{% url %}` of a list's rows, one `reverse()` per route.

A list page that wrote `{% url %}` in its loop walked the resolver once per row (issue #18: lists
cost the same at 5 rows as at 50). Rows' URLs differ only in their arguments, so the route is
reversed once per process with digit placeholders (every converter accepts digits) and each row
fills in its own values. A value that Django would quote, or that the route's converter might
refuse (anything but digits where only digits pass), goes through `reverse()` as before, so the
HTML, and the errors, are exactly those of `{% url %}`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from django import template
from django.urls import NoReverseMatch, get_script_prefix, reverse

register = template.Library()

_MARK = "9{}0370813"  # a placeholder per argument position; digits, so int, str, slug and path take it
_PLAIN = re.compile(r"[-A-Za-z0-9_]+\Z")  # passes str/slug/path unchanged and unquoted
_DIGITS = re.compile(r"[0-9]+\Z")


@lru_cache(maxsize=512)
def _route(name: str, count: int, script_prefix: str) -> tuple[tuple[str, ...], tuple[re.Pattern, ...]] | None:
    """The route's text around its `count` arguments, and what each argument may be to fill it in
    without `reverse()`; None when the placeholders do not come back exactly once each."""
    marks = [_MARK.format(i) for i in range(count)]
    url = reverse(name, args=marks)
    parts = re.split("|".join(marks), url)
    if len(parts) != count + 1 or any(url.count(mark) != 1 for mark in marks):
        return None
    if [m for m in re.findall("|".join(marks), url)] != marks:
        return None  # the arguments come out in another order
    accepts = []
    for i in range(count):
        try:
            reverse(name, args=[*marks[:i], f"x{marks[i]}", *marks[i + 1 :]])
        except NoReverseMatch:
            accepts.append(_DIGITS)  # an int (or other digits-only) converter
        else:
            accepts.append(_PLAIN)
    return tuple(parts), tuple(accepts)


@register.simple_tag
def row_url(name: str, *args) -> str:
    """`{% url name args %}` for a row, reversing the route once per process."""
    route = _route(name, len(args), get_script_prefix())
    values = [str(arg) for arg in args]
    if route is None or not all(ok.match(value) for ok, value in zip(route[1], values, strict=True)):
        return reverse(name, args=args)
    parts = route[0]
    return "".join(part + value for part, value in zip(parts, values, strict=False)) + parts[-1]
