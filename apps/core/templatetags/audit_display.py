"""The audit page's rows: `{% load audit_display %}{% audit_page page as audit %}`.

`audit.items` are the page's entries in order, as `AuditRow`s (`apps.core.audit_display`), with
each run of consecutive system-bookkeeping entries folded into one group item unless the page was
asked for them (`?system=1`). `audit.bookkeeping` counts them on this page; `audit.toggle_query`
is the query string that flips the toggle, keeping the filters and the page. Folding happens per
page, after pagination, so the trail, its page numbers and the CSV export stay complete.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from django import template

from apps.core.audit_display import AuditRow, audit_rows

register = template.Library()
SYSTEM_PARAM = "system"


@dataclasses.dataclass
class BookkeepingGroup:
    """Consecutive bookkeeping entries folded into one line: "3 system bookkeeping entries"."""

    rows: list[AuditRow]
    is_group: bool = True

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def first_id(self) -> int:
        return self.rows[-1].entry.pk  # the page runs newest first

    @property
    def last_id(self) -> int:
        return self.rows[0].entry.pk

    @property
    def kinds(self) -> str:
        counts = Counter(row.bookkeeping for row in self.rows)
        return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.most_common())


@dataclasses.dataclass
class AuditPage:
    items: list
    bookkeeping: int
    show_system: bool
    toggle_query: str


def fold_bookkeeping(rows: list[AuditRow]) -> list:
    """Rows in order, each run of bookkeeping rows replaced by one `BookkeepingGroup`."""
    items: list = []
    for row in rows:
        if not row.is_bookkeeping:
            items.append(row)
        elif items and isinstance(items[-1], BookkeepingGroup):
            items[-1].rows.append(row)
        else:
            items.append(BookkeepingGroup([row]))
    return items


@register.simple_tag(takes_context=True)
def audit_page(context, entries) -> AuditPage:
    request = context.get("request")
    params = request.GET.copy() if request is not None else None
    show_system = params is not None and params.get(SYSTEM_PARAM) == "1"
    rows = audit_rows(entries)
    toggle_query = ""
    if params is not None:
        params.pop(SYSTEM_PARAM, None)
        if not show_system:
            params[SYSTEM_PARAM] = "1"
        toggle_query = params.urlencode()
    return AuditPage(
        items=rows if show_system else fold_bookkeeping(rows),
        bookkeeping=sum(row.is_bookkeeping for row in rows),
        show_system=show_system,
        toggle_query=toggle_query,
    )
