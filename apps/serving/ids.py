"""Prediction ids that carry their own route: feedback needs no log row to find where it went.

`pr_<payload>_<tag>`: payload = base64url(endpoint id, route id, version id, unix ms, 8 bytes
unique to the process and call); tag = a 10-byte keyed BLAKE2b MAC of the payload (key derived
from SECRET_KEY), so a caller cannot forge an id that points feedback at another route. Only 10 % of predictions are logged, but every
answered prediction can receive feedback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from django.conf import settings

_PACK = struct.Struct(">IIIQ8s")  # endpoint id, route id, version id, unix ms, unique part
_PROCESS_RANDOM = os.urandom(4)
_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))
_TAG_BYTES = 10
_PAYLOAD_CHARS, _TAG_CHARS = 38, 14  # unpadded base64url of 28 and 10 bytes


@cache
def _key() -> bytes:
    return hashlib.sha256(b"portal.serving.prediction-id:" + settings.SECRET_KEY.encode()).digest()  # 32 bytes


@cache
def _caller_key() -> bytes:
    return hashlib.sha256(b"portal.serving.caller-key:" + settings.SECRET_KEY.encode()).digest()


@dataclass(frozen=True)
class PredictionRef:
    endpoint_id: int
    route_id: int
    version_id: int
    at: datetime


def _tag(payload: bytes) -> bytes:
    # Keyed BLAKE2b is a MAC on its own (no HMAC construction needed) and costs about a tenth of
    # HMAC-SHA256's per-call setup on the predict hot path.
    return base64.urlsafe_b64encode(hashlib.blake2b(payload, key=_key(), digest_size=_TAG_BYTES).digest())[:-2]


def new_prediction_id(endpoint_id: int, route_id: int, version_id: int, unix_ms: int) -> str:
    # Unique without a syscall per prediction: a random per-process prefix and a counter (the tag,
    # not this part, is what makes an id unforgeable).
    unique = _PROCESS_RANDOM + (next(_COUNTER) & 0xFFFFFFFF).to_bytes(4, "big")
    payload = base64.urlsafe_b64encode(_PACK.pack(endpoint_id, route_id, version_id, unix_ms, unique))[:-2]
    return f"pr_{payload.decode()}_{_tag(payload).decode()}"


def parse_prediction_id(value) -> PredictionRef | None:
    """The route behind an id this portal issued, or None for anything else (forged, malformed)."""
    # Fixed offsets: base64url text may itself hold "_", so the id is never split on it.
    if (
        not isinstance(value, str)
        or len(value) != 4 + _PAYLOAD_CHARS + _TAG_CHARS
        or not value.startswith("pr_")
        or value[3 + _PAYLOAD_CHARS] != "_"
    ):
        return None
    payload, tag = value[3 : 3 + _PAYLOAD_CHARS], value[4 + _PAYLOAD_CHARS :]
    if not hmac.compare_digest(tag.encode(), _tag(payload.encode())):
        return None
    try:
        endpoint_id, route_id, version_id, unix_ms, _ = _PACK.unpack(base64.urlsafe_b64decode(payload + "=="))
    except (ValueError, struct.error):
        return None
    return PredictionRef(endpoint_id, route_id, version_id, datetime.fromtimestamp(unix_ms / 1000, tz=UTC))


def pseudonymise_key(key: str) -> str:
    """The caller key as the logs keep it: a keyed hash (the same key, the same value; never the key)."""
    return hmac.new(_caller_key(), key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
