"""Formatting filters for pages: `{% load portal_format %}`."""

from __future__ import annotations

from django import template

register = template.Library()
UNITS = (("day", 86400), ("h", 3600), ("min", 60), ("s", 1))


@register.filter
def duration(seconds) -> str:
    """7776000 -> '90 days', 5400 -> '1 h 30 min', 45 -> '45 s' (the two largest units)."""
    try:
        left = int(seconds)
    except (TypeError, ValueError):
        return ""
    if left <= 0:
        return "0 s"
    parts = []
    for name, size in UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if name == 'day' and count != 1 else ''}")
    return " ".join(parts[:2])
