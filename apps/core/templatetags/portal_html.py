"""Small pieces of markup every page repeats, one template node each instead of a loop of several
(a page's time goes mostly to its template nodes): `{% load portal_html %}`, then
`{% options choices selected %}` inside a `<select>` and `{% nav_links portal_nav %}` in base.html.
Values are escaped with markupsafe's `escape`."""

from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe
from markupsafe import escape as e

register = template.Library()


@register.simple_tag
def options(choices, selected=None, blank=None) -> str:
    """`<option>`s for `choices` (values, or (value, label) pairs) with `selected` marked; with
    `blank`, a first option of value "" labelled `blank`. Values compare as strings, as a query
    string gives them."""
    chosen = "" if selected is None else str(selected)
    parts = [f'<option value="">{e(blank)}</option>'] if blank is not None else []
    for choice in choices:
        value, label = choice if isinstance(choice, (tuple, list)) else (choice, choice)
        mark = " selected" if str(value) == chosen else ""
        parts.append(f'<option value="{e(value)}"{mark}>{e(label)}</option>')
    return mark_safe("".join(parts))  # noqa: S308  every value and label escaped with e()


@register.simple_tag
def nav_links(items) -> str:
    """The navigation bar's entries (`apps.core.context_processors.portal`), the current one active."""
    return mark_safe(  # noqa: S308  url and label escaped with e()
        "".join(
            f'<li class="nav-item"><a class="nav-link{" active" if item["active"] else ""}" href="{e(item["url"])}">'
            f"{e(item['label'])}</a></li>"
            for item in items
        )
    )
