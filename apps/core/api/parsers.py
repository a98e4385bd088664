"""The API's JSON parser (DRF's default for every view): bad JSON is a 400, never a 500.

DRF's own parser let three kinds of bad input through to a 500: nesting deep enough to exhaust
the interpreter's recursion (a body of 50,000 `[`), lone UTF-16 surrogates (`"\\ud800"` decodes
to a `str` that no database, Redis or file encoding accepts), and bodies over
DATA_UPLOAD_MAX_MEMORY_SIZE (read from the stream, past Django's check on `request.body`). This one
refuses each before any view sees the data. Multipart uploads keep Django's own limits.
"""

from __future__ import annotations

import json
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from apps.core.errors import TooLarge

# Deeper than any document the API defines (the deepest, a model card or lineage, is under 10),
# and far below the recursion limit that serializers, JSON fields and hashing share.
MAX_DEPTH = 64
# A surrogate can reach a decoded string only as a `\uD800`-`\uDFFF` escape (raw UTF-8 cannot
# encode one); bodies without such an escape skip the full check.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def loads(raw: bytes, encoding: str = "utf-8"):
    """Decode a JSON body with the API's limits; ParseError (400) naming what is wrong."""
    try:
        text = raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise ParseError(f"JSON parse error - the body is not valid {encoding}.") from None
    try:
        data = _DECODER.decode(text)
    except RecursionError:
        raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth_over(data, MAX_DEPTH):
        raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels.")
    if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(data):
        raise ParseError("JSON parse error - a string holds a lone UTF-16 surrogate (\\ud800-\\udfff).")
    return data


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON; send a number or null")


# One decoder for every body: json.loads with a hook builds a decoder and its scanner per call,
# which cost more than decoding a 30-number predict body itself.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _depth_over(data, limit: int) -> bool:
    """True when containers nest more than `limit` deep (iterative: deep input cannot recurse here)."""
    if not isinstance(data, dict | list):
        return False
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _has_lone_surrogate(data) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class PortalJSONParser(JSONParser):
    """`application/json` with the limits above (settings: REST_FRAMEWORK DEFAULT_PARSER_CLASSES)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(raw) > limit:
            raise TooLarge(f"The request body is over {limit} bytes; send less in one request.")
        return loads(raw, encoding)
