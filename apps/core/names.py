"""Object names (`{name}` in paths): one rule for every kind, and no name that a fixed route hides.

shared/API.md: 1-100 lowercase letters, digits and inner hyphens, unique in their kind, never a
fixed route of the kind. The fixed routes are read from the URLconf, so a route added later
(`/features/lookup`) reserves its word without anyone remembering to.
"""

from __future__ import annotations

import re
from functools import cache

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.urls import URLPattern, URLResolver, get_resolver

NAME_RE = r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$"
NAME_HELP = "Use 1-100 lowercase letters, digits and inner hyphens, e.g. credit-risk."
name_validator = RegexValidator(NAME_RE, NAME_HELP)


def slug_from(text: str, *, fallback: str = "user", max_length: int = 100) -> str:
    """A valid name made from free text such as a username (``jane_doe.x`` -> ``jane-doe-x``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)[:max_length].strip("-")
    return slug or fallback


def _routes(patterns, prefix: str = "") -> list[str]:
    found = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += _routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            found.append(route)
    return found


@cache
def fixed_segments(*prefixes: str) -> frozenset[str]:
    """The fixed words that follow any of `prefixes` in a route (``"features/"`` -> ``{"new", ...}``)."""
    words = set()
    for route in _routes(get_resolver().url_patterns):
        route = route.lstrip("^")
        for prefix in prefixes:
            if route.startswith(prefix):
                segment = route[len(prefix) :].split("/", 1)[0].rstrip("$")
                if segment and "<" not in segment and "(" not in segment:
                    words.add(segment)
    return frozenset(words)


def check_name(name: str, *, route_prefixes: tuple[str, ...], field: str = "name") -> None:
    """Raise a field error unless `name` is valid and not a fixed route under the kind's prefixes
    (e.g. ``("features/", "api/v1/feature-views/")``)."""
    if not isinstance(name, str) or not re.match(NAME_RE, name):
        raise ValidationError({field: [NAME_HELP]})
    if name in fixed_segments(*route_prefixes):
        raise ValidationError({field: [f"{name!r} is reserved for a page of the portal; choose another name."]})
