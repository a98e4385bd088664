"""The paginator of API lists (apps/core/api/pagination.py).

Django's Paginator counts the rows (a COUNT over the whole permission-filtered query) before it
reads a page. Most lists people open fit on their first page, so this one reads the first page
with one row more than it shows: when that extra row is not there, the count is the rows read
and the COUNT query is skipped. Later pages, and first pages that are full, count as before.
A list compiled once per shape (`apps.core.sqltemplates.Lazy`) answers a page and the list's size
in one statement (`with_count`), so any page of it costs one query, full or not; list pages that
page such a list use this paginator too. Other list pages keep Django's, so their query count never
depends on whether the rows fit on one page.
"""

from __future__ import annotations

from django.core import paginator


class Paginator(paginator.Paginator):
    def get_page(self, number):
        found = self._counted_page(number)
        return found if found is not None else super().get_page(number)

    def page(self, number):
        found = self._counted_page(number)
        if found is not None:
            return found
        if "count" not in self.__dict__ and _is_first(number):
            rows = list(self.object_list[: self.per_page + self.orphans + 1])
            if len(rows) <= self.per_page + self.orphans:
                self.__dict__["count"] = len(rows)  # Paginator.count is a cached_property
                return self._get_page(rows, 1, self)
            return self._get_page(rows[: self.per_page], self.validate_number(1), self)
        return super().page(number)

    def _counted_page(self, number):
        """Page `number` and the count in one statement, where the list can (None otherwise, and
        for a number past the end, which the usual path answers: the last page, or EmptyPage)."""
        with_count = getattr(self.object_list, "with_count", None)
        if with_count is None or "count" in self.__dict__:
            return None
        try:
            number = int(number)
        except (TypeError, ValueError):
            return None
        if number < 1:
            return None
        bottom = (number - 1) * self.per_page
        if bottom + self.per_page + self.orphans > _MAX_OFFSET:  # no database takes such an OFFSET
            return None  # the usual path: counted, then past the end
        rows, total = with_count(bottom, bottom + self.per_page + self.orphans)
        if total is None:
            return None
        self.__dict__["count"] = total  # Paginator.count is a cached_property
        if number > 1 and not rows:
            return None
        top = bottom + self.per_page
        if top + self.orphans >= total:
            top = total
        return self._get_page(rows[: top - bottom], number, self)


_MAX_OFFSET = 2**63 - 1  # LIMIT and OFFSET are signed 64-bit integers in SQLite and PostgreSQL


def _is_first(number) -> bool:
    try:
        return int(number) == 1
    except (TypeError, ValueError):
        return False
