"""MLflow's page tokens: an opaque string the client hands back for the next page (here the offset
into an ordered query, base64 JSON) and the max_results bounds of each call."""

from __future__ import annotations

import base64
import binascii
import json

from apps.mlflow_api.protocol import Call, invalid


def max_results(call: Call, *, default: int, limit: int) -> int:
    value = call.int_param("max_results", default=default)
    if value < 1 or value > limit:
        raise invalid(f"Invalid value {value} for parameter 'max_results': give 1 to {limit}.")
    return value


def offset_from(call: Call) -> int:
    token = call.str_param("page_token")
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid("Invalid page token: pass back the next_page_token of the previous page.") from None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 10**9:
        raise invalid("Invalid page token: pass back the next_page_token of the previous page.")
    return offset


def page_of(rows, offset: int, size: int) -> tuple[list, str | None]:
    """(this page's rows, the next page's token or None); one extra row read tells if there is more."""
    page = list(rows[offset : offset + size + 1])
    if len(page) <= size:
        return page, None
    token = base64.urlsafe_b64encode(json.dumps({"offset": offset + size}).encode()).decode()
    return page[:size], token
