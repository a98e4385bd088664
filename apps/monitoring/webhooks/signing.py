"""The signature of a webhook body (shared/API.md "Webhooks"), for the sender and for receivers.

`X-Portal-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" under the secret>`, with
`X-Portal-Timestamp` in Unix seconds: signing the timestamp with the body lets a receiver refuse
a captured request replayed later (`webhook_verify`'s tolerance).
"""

from __future__ import annotations

import hashlib
import hmac
import time

PREFIX = "sha256="


def webhook_sign(secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """The `X-Portal-Signature` value for `body` sent at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    message = str(int(timestamp)).encode() + b"." + body
    return PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()


def webhook_verify(
    secret: str | bytes,
    timestamp: int | str,
    body: bytes,
    signature: str,
    tolerance_s: int = 300,
    *,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature matches (compared in constant time) and the timestamp is
    within `tolerance_s` of its clock. `body` is the raw request body, before any JSON parsing."""
    try:
        sent = int(str(timestamp))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    if not isinstance(signature, str) or not signature.startswith(PREFIX):
        return False
    return hmac.compare_digest(webhook_sign(secret, sent, body), signature)
