"""One way to read a request: `validated(Serializer, request.data)` for bodies and
`validated_query(Serializer, request.query_params)` for query strings.

The rule, everywhere: a body must be a JSON object (or form), unknown body fields are a 400 naming
each (`{"desciption": ["Unknown field."]}`), bad values a 400 per field; unknown query-string
names are ignored (caches and tracing add their own), bad values a 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers
from rest_framework.exceptions import ValidationError


def validated(serializer_class: type[serializers.Serializer], data, *, partial: bool = False, context=None) -> dict:
    """The validated body, or a 400 listing every bad and unknown field."""
    if not isinstance(data, Mapping):
        raise ValidationError({"detail": ["Send a JSON object with the fields this endpoint documents."]})
    serializer = serializer_class(data=data, partial=partial, context=context or {})
    known = set(serializer.fields)
    errors = {name: ["Unknown field."] for name in data if name not in known}
    if not serializer.is_valid():
        errors = {**errors, **serializer.errors}
    if errors:
        raise ValidationError(errors)
    return dict(serializer.validated_data)


def validated_query(serializer_class: type[serializers.Serializer], params, *, context=None) -> dict:
    """The validated query string (unknown names ignored), or a 400 naming each bad parameter."""
    serializer = serializer_class(data=params, context=context or {})
    if not serializer.is_valid():
        raise ValidationError(serializer.errors)
    return dict(serializer.validated_data)
