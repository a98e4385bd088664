"""What one GET costs: SQL queries and URL reversals (`reverse()` and `{% url %}` alike).

`list_cost(client, url)` is the measurement the list tests compare at 5 and at 50 rows: a list whose
page or serializer asks the database, or reverses a URL, once per row shows it as a difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from unittest import mock

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls.resolvers import URLResolver


@dataclass(frozen=True)
class Cost:
    queries: int
    reverses: int
    status: int


def list_cost(client, url: str) -> Cost:
    """One GET of `url` with `client`: the queries it ran, the URLs it reversed, its status."""
    calls = 0
    original = URLResolver._reverse_with_prefix

    def counting(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    with (
        mock.patch.object(URLResolver, "_reverse_with_prefix", counting),
        CaptureQueriesContext(connection) as queries,
    ):
        response = client.get(url)
    return Cost(queries=len(queries.captured_queries), reverses=calls, status=response.status_code)
