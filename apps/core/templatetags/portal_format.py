"""Formatting filters for pages: `{% load portal_format %}` then `{{ value|num }}`, `|when`,
`|day` (a date without time), `|duration`, `|size`, `|money`, `|percent`. One implementation
(`apps/core/format.py`) for pages, messages and the command line."""

from __future__ import annotations

from django import template

from apps.core import format as fmt

register = template.Library()


@register.filter
def num(value, digits=4) -> str:
    return fmt.num(value, int(digits))


@register.filter
def when(value) -> str:
    return fmt.when(value)


@register.filter
def day(value) -> str:
    return fmt.when(value, with_time=False)


@register.filter
def duration(seconds) -> str:
    return fmt.duration(seconds)


@register.filter
def size(value) -> str:
    return fmt.size(value)


@register.filter
def money(value, currency=None) -> str:
    return fmt.money(value, currency)


@register.filter
def percent(value, digits=1) -> str:
    return fmt.percent(value, int(digits))
