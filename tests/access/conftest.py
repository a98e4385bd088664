"""Parametrize each matrix class's `test_row` by its rows (one test per route and method)."""

from __future__ import annotations

from tests.access.matrix import AccessMatrix, matrix_rows


def pytest_generate_tests(metafunc):
    cls = metafunc.cls
    if cls is not None and issubclass(cls, AccessMatrix) and "row" in metafunc.fixturenames:
        rows = matrix_rows(cls)
        metafunc.parametrize("row", rows, ids=[f"{m} {p}" for m, p in rows])
