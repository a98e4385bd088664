"""Row pieces of the model list, one template node each instead of a loop of several: a 25-row
page rendered ~600 template nodes, most of them inside these two loops."""

from __future__ import annotations

from django import template
from django.utils.html import format_html_join

register = template.Library()


@register.simple_tag
def alias_badges(rows) -> str:
    """`staging: v3` badges of `selectors.with_aliases` rows; protected ones in red."""
    return format_html_join(
        "",
        '<span class="badge {}">{}: v{}</span> ',
        (("text-bg-danger" if a.protected else "text-bg-info", a.name, a.version) for a in rows),
    )


@register.simple_tag
def tag_links(tags) -> str:
    """Each tag as a badge linking to the list filtered by it."""
    return format_html_join(
        "", '<a class="badge text-bg-light text-decoration-none" href="?tag={}">{}</a> ', ((t, t) for t in tags)
    )
