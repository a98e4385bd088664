"""The one list pagination (API.md "Lists"): `?page=` from 1 (past the end 404) and `?page_size=`
1-500, default 50. A value out of range is a 400 naming the parameter; DRF's own class silently
replaced it (`page_size=0` or `abc` gave 50 rows, `501` gave 500), so a script never learnt it had
asked for something else."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination

from apps.core.paginator import Paginator

_PAST_ANY_END = 10**18


class PortalPagination(PageNumberPagination):
    django_paginator_class = Paginator  # skips the COUNT when the first page is not full
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        size = _integer(raw)
        if size is None or not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"Give a whole number from 1 to {self.max_page_size}."]}
            )
        return size

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw in self.last_page_strings:
            return super().get_page_number(request, paginator)
        number = _integer(raw)
        if number is None and raw.strip().isascii() and raw.strip().isdigit():
            number = _PAST_ANY_END  # more digits than any list has pages: past the end, a 404
        if number is None or number < 1:
            raise ValidationError({self.page_query_param: ["Give a page number from 1."]})
        return number

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.page_query_param: {"minimum": 1},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size, "default": self.page_size},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters


def _integer(raw: str) -> int | None:
    """A plain decimal integer (no sign tricks, no exponent, at most 18 digits), else None."""
    text = raw.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
