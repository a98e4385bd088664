"""The model list's rows, rendered in Python: a 25-row page rendered ~400 template nodes, most
of them inside the row loop (issue #18's page goal). The markup is the one the page always had;
every value is escaped with markupsafe's `escape` (C speedups; Django's `format_html` costs several
times as much per value). Each piece built here is escaped exactly once."""

from __future__ import annotations

from urllib.parse import quote

from django import template
from django.utils.safestring import mark_safe
from markupsafe import escape as e

from apps.core import format as fmt
from apps.core.templatetags.portal_urls import row_url

register = template.Library()

_ARCHIVED = ' <span class="badge text-bg-secondary">archived</span>'
_NO_VERSION = '<span class="text-secondary">none</span>'


@register.simple_tag
def model_rows(rows) -> str:
    """The `<tr>` of each `ModelRow` (with its `alias_list`) of the model list page."""
    return mark_safe("\n".join(_model_row(m) for m in rows))  # noqa: S308  every value in _model_row is escaped with e()


def _model_row(m) -> str:
    team = f'<div class="small text-secondary">{e(m.team_name)}</div>' if m.team_name else ""
    return (
        f'<tr><td><a href="{e(row_url("catalog:model-detail", m.name))}" class="fw-semibold">{e(m.name)}</a>'
        f"{_ARCHIVED if m.archived_at else ''}"
        f'<div class="small text-secondary text-truncate mw-32rem">{e(m.description)}</div></td>'
        f"<td>{f'v{m.latest_version}' if m.latest_version else _NO_VERSION}</td>"
        f"<td>{alias_badges(m.alias_list)}</td><td>{tag_links(m.tags)}</td><td>{e(m.framework or '—')}</td>"
        f"<td>{e(m.owner_username)}{team}</td>"
        f'<td class="small text-secondary text-nowrap">{e(fmt.when(m.updated_at))}</td></tr>'
    )


@register.simple_tag
def alias_badges(rows) -> str:
    """`staging: v3` badges of `selectors.with_aliases` rows; protected ones in red."""
    return mark_safe(  # noqa: S308  names escaped with e(); version is an int
        "".join(
            f'<span class="badge {"text-bg-danger" if a.protected else "text-bg-info"}">{e(a.name)}: v{a.version}</span> '
            for a in rows
        )
    )


@register.simple_tag
def tag_links(tags) -> str:
    """Each tag as a badge linking to the list filtered by it (URL-encoded, so `a&b` or `#x` filter
    by themselves, then HTML-escaped)."""
    return mark_safe(  # noqa: S308  each tag URL-quoted and escaped with e()
        "".join(
            f'<a class="badge text-bg-light text-decoration-none" href="?tag={e(quote(str(t), safe=""))}">{e(t)}</a> '
            for t in tags
        )
    )
