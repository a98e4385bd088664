"""Hot list queries compiled once per shape and run with each request's values (issue #18).

Building a permission-filtered list query with the ORM and compiling it to SQL costs about 1.2 ms
of Python per request: ten times what the database then spends running it. The SQL of such a
query depends only on its *shape*: which filters are present, how many groups the caller has,
the sort, the page. The values (the caller's id, group ids, the search text) are parameters.

So a list selector builds its QuerySet as usual, but with *markers* in place of the values
(`Params.int`, `Params.str`, `Params.scope`); the first request of a shape compiles it and finds
where each marker landed among the SQL parameters, and every later request of that shape runs
the same SQL with its own values put in those places. The database sees ordinary parameterized
SQL; nothing is formatted into the SQL text. A marker that does not come out as a parameter
(inlined, or wrapped in a JSON adapter) fails the build loudly: put such a value in the key as a
literal instead (`Params.literal`).

Rows come back through the compiler's own converters (datetimes, JSON), exactly as
`values_list()` returns them, as lists. `Lazy` wraps one query shape as a sliceable list with `count()`, so
Django's and the API's paginators page it without knowing; `apps.core.paginator.Paginator` also
asks `Lazy.with_count` for a page and the list's size in one statement.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import Count, JSONField, QuerySet, Window
from django.db.models.expressions import Col

from apps.core.permissions import Scope

_MAX_TEMPLATES = 1024
_INT_BASE = -(2**61)  # ids are positive: a marker never equals a real value
_STR_MARK = "Zq{}Mk{}Zq"  # letters and digits only: LIKE escaping leaves it as it is


class TemplateError(RuntimeError):
    """A query shape that cannot be templated (a programming error, raised at its first build)."""


class Params:
    """The variable values of one request's query and the markers its QuerySet is built with."""

    __slots__ = ("values", "shape")

    def __init__(self) -> None:
        self.values: list = []
        self.shape: list = []

    def int(self, value: int) -> int:
        self.values.append(int(value))
        self.shape.append("i")
        return _INT_BASE - len(self.values)

    def str(self, value: str) -> str:
        self.values.append(str(value))
        self.shape.append("s")
        return _STR_MARK.format(len(self.values), "x")

    def literal(self, value) -> Any:
        """A value that becomes part of the shape (a choice, a flag, a sort): returned as it is."""
        self.shape.append(("=", value))
        return value

    def scope(self, scope: Scope) -> Scope:
        """`scope` with its user and group ids as markers (its kind and group count are the shape)."""
        self.shape.append(
            ("scope", scope.kind, scope.permission, None if scope.group_ids is None else len(scope.group_ids))
        )
        if scope.kind != "objects":
            return scope
        user_id = self.int(scope.user_id)
        groups = None if scope.group_ids is None else tuple(self.int(g) for g in scope.group_ids)
        return scope._replace(user_id=user_id, group_ids=groups)

    def key(self, *extra) -> tuple:
        return (*self.shape, *extra)


class _Compiled:
    __slots__ = ("sql", "params", "slots", "converters", "using", "empty")

    def __init__(self, queryset: QuerySet, n_values: int, *, count: bool = False) -> None:
        self.using = queryset.db
        compiler = queryset.query.get_compiler(self.using)
        self.converters = ()
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:  # `none()`: no SQL to run, whatever the values
            self.sql, self.params, self.slots, self.empty = "", (), (), [(0,)] if count else []
            return
        self.empty = None
        if count:
            sql = f"SELECT COUNT(*) FROM ({sql}) counted"  # noqa: S608  wraps the ORM's own SQL; values stay parameters
        else:
            self.converters = _converters(compiler)
        self.sql = sql
        self.params = tuple(params)
        self.slots = tuple(_slot(p, n_values) for p in self.params)
        found = {s[0] for s in self.slots if s is not None}
        if found != set(range(n_values)):
            missing = sorted(set(range(n_values)) - found)
            raise TemplateError(f"markers {missing} are not SQL parameters of this query; make them literals")

    def run(self, values: list) -> list:
        if self.empty is not None:
            return list(self.empty)
        params = list(self.params)
        for i, slot in enumerate(self.slots):
            if slot is not None:
                params[i] = _fill(params[i], slot, values, self.using)
        with connections[self.using].cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if not self.converters:
            return rows
        out = []
        for row in rows:
            row = list(row)
            for pos, funcs in self.converters:
                value = row[pos]
                for func in funcs:
                    value = func(value)
                row[pos] = value
            out.append(row)
        return out


def _converters(compiler) -> tuple:
    """The compiler's own value converters per column (what `values_list()` applies), bound once.
    Two of them, which every list row meets, are replaced by equivalents that skip Django's
    per-value lookups: SQLite's datetime text (Django's parse_datetime tries `fromisoformat`
    first too) and a plain JSONField's `json.loads`."""
    connection = compiler.connection
    fields = [s[0] for s in compiler.select[: compiler.col_count]]
    bound = []
    for pos, (funcs, expression) in compiler.get_converters(fields).items():
        bound.append((pos, tuple(_bind(func, expression, connection) for func in funcs)))
    return tuple(bound)


def _bind(func, expression, connection) -> Callable:
    name = getattr(func, "__name__", "")
    if connection.vendor == "sqlite" and name == "convert_datetimefield_value":
        tz = connection.timezone if settings.USE_TZ else None

        def sqlite_datetime(value):
            if value is None:
                return None
            if not isinstance(value, datetime.datetime):
                try:
                    value = datetime.datetime.fromisoformat(value)
                except ValueError:
                    return func(value, expression, connection)
            return value if tz is None or value.tzinfo is not None else value.replace(tzinfo=tz)

        return sqlite_datetime
    field = getattr(expression, "target", None)
    if (
        name == "from_db_value"
        and isinstance(field, JSONField)
        and field.decoder is None
        and isinstance(expression, Col)
    ):

        def plain_json(value):
            if not isinstance(value, str):
                return value
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value

        return plain_json
    return lambda value: func(value, expression, connection)


def _slot(param, n_values: int) -> tuple | None:
    """Which value a compiled parameter holds: (index, "exact") or (index, "like") for a marker
    inside a LIKE pattern (Django has wrapped it in % and escaped it), None for a literal."""
    if isinstance(param, int) and not isinstance(param, bool) and _INT_BASE - n_values <= param < _INT_BASE:
        return (_INT_BASE - param - 1, "exact")
    if isinstance(param, str) and "Zq" in param:
        for i in range(n_values):
            mark = _STR_MARK.format(i + 1, "x")
            if param == mark:
                return (i, "exact")
            if mark in param:
                return (i, "like", mark)
    return None


def _fill(param, slot: tuple, values: list, using: str):
    value = values[slot[0]]
    if slot[1] == "exact":
        return value
    return param.replace(slot[2], connections[using].ops.prep_for_like_query(value))


_TEMPLATES: dict[tuple, _Compiled] = {}
_LOCK = threading.Lock()


def _compiled(key: tuple, build: Callable[[], QuerySet], n_values: int, count: bool) -> _Compiled:
    found = _TEMPLATES.get(key)
    if found is None:
        found = _Compiled(build(), n_values, count=count)
        with _LOCK:
            if len(_TEMPLATES) >= _MAX_TEMPLATES:
                _TEMPLATES.clear()
            _TEMPLATES[key] = found
    return found


def clear(**_kwargs) -> None:
    """Forget every compiled shape (after migrate or flush, as the permission ids they hold change)."""
    with _LOCK:
        _TEMPLATES.clear()


class Lazy:
    """One query shape as a sliceable list of rows with `count()`, for Django's and DRF's paginators.

    `build()` returns the values_list QuerySet, built with `params`' markers and unsliced; `row`
    turns a tuple into what callers get. Slices and counts are templates of their own."""

    def __init__(self, key: tuple, params: Params, build: Callable[[], QuerySet], row: Callable = tuple) -> None:
        self.key, self.params, self.build, self.row = (connections["default"].vendor, *key), params, build, row

    def count(self) -> int:
        return count(self.key[1:], self.params, self.build)

    def with_count(self, start: int, stop: int) -> tuple[list, int | None]:
        """Rows `[start:stop]` and how many rows the whole list has, in one statement (a
        `COUNT(*) OVER ()` window, evaluated before LIMIT): a paginator's COUNT and page query in
        one. None as the count when the slice is past the end (no row to carry it)."""
        compiled = _compiled(
            (*self.key, "with-count", start, stop),
            lambda: self.build().annotate(_rows_in_list=Window(Count("*")))[start:stop],
            len(self.params.values),
            False,
        )
        rows = compiled.run(self.params.values)
        if not rows:
            return [], (0 if start == 0 else None)
        return [self.row(*r[:-1]) for r in rows], rows[0][-1]

    def __getitem__(self, index):
        if not isinstance(index, slice) or index.step is not None or (index.start or 0) < 0 or index.stop is None:
            raise TypeError("Lazy rows take a plain forward slice [start:stop]")
        start, stop = index.start or 0, index.stop
        compiled = _compiled((*self.key, start, stop), lambda: self.build()[start:stop], len(self.params.values), False)
        return [self.row(*r) for r in compiled.run(self.params.values)]


def rows(key: tuple, params: Params, build: Callable[[], QuerySet]) -> list[tuple]:
    """Every row of one shape (no paging), e.g. the aliases of a page of models."""
    return _compiled((connections["default"].vendor, *key), build, len(params.values), False).run(params.values)


def count(key: tuple, params: Params, build: Callable[[], QuerySet]) -> int:
    """How many rows one shape has: `SELECT COUNT(*)` over its unordered query."""
    compiled = _compiled(
        (connections["default"].vendor, *key, "count"), lambda: build().order_by(), len(params.values), True
    )
    return compiled.run(params.values)[0][0]
