"""The paginator of API lists (apps/core/api/pagination.py).

Django's Paginator counts the rows (a COUNT over the whole permission-filtered query) before it
reads a page. Most lists people open fit on their first page, so this one reads the first page
with one row more than it shows: when that extra row is not there, the count is the rows read
and the COUNT query is skipped. Later pages, and first pages that are full, count as before.
(List pages show 25 rows and keep Django's paginator, so their query count never depends on
whether the rows fit on one page.)
"""

from __future__ import annotations

from django.core import paginator


class Paginator(paginator.Paginator):
    def page(self, number):
        if "count" not in self.__dict__ and _is_first(number):
            rows = list(self.object_list[: self.per_page + self.orphans + 1])
            if len(rows) <= self.per_page + self.orphans:
                self.__dict__["count"] = len(rows)  # Paginator.count is a cached_property
                return self._get_page(rows, 1, self)
            return self._get_page(rows[: self.per_page], self.validate_number(1), self)
        return super().page(number)


def _is_first(number) -> bool:
    try:
        return int(number) == 1
    except (TypeError, ValueError):
        return False
