"""The audit trail's keys and its entry hash: HMAC-SHA256 under a key derived from the key ring.

entry_hash = HMAC-SHA256(chain key, prev_hash || canonical content). The chain key is derived with
HKDF from a master key of the vault's key ring (info ``portal-audit-chain-v1``); checkpoints are
signed with a second derived key (info ``portal-audit-checkpoint-v1``). Neither is stored anywhere:
write access to the database alone cannot forge a chain, and nothing here logs a key.

Each entry records the id of the master key it was hashed under (``hash_kid``), so entries stay
verifiable after a rotation as long as that master key stays in the ring (it may be inactive;
``vault.keys_retire_unused`` keeps every key an audit entry names).

The ring itself lives in ``apps.core.vault``, which needs the models, which need this module: the
core app registers the vault's ring loader here when it is ready (`use_keyring`), so no import goes
upwards. This module holds no Django model and reads no settings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from apps.core.crypto import KeyRing, KeyRingError

GENESIS_HASH = "0" * 64
CHAIN_INFO = b"portal-audit-chain-v1"
CHECKPOINT_INFO = b"portal-audit-checkpoint-v1"

# The fields an entry's hash covers, in the order `canonical_content` expects them. Everything an
# entry says is here; only the chain's own columns (prev_hash, entry_hash, hash_kid) are not.
CANONICAL_FIELDS = (
    "id",
    "content_type_id",
    "object_pk",
    "object_id",
    "object_repr",
    "serialized_data",
    "action",
    "changes",
    "changes_text",
    "actor_id",
    "actor_email",
    "cid",
    "remote_addr",
    "remote_port",
    "timestamp",
    "additional_data",
)

_ring_source: Callable[[], KeyRing] | None = None
_derived: dict[tuple[bytes, bytes], bytes] = {}
_macs: dict[bytes, hmac.HMAC] = {}  # a keyed HMAC state per key: copying it skips the key setup
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)


def use_keyring(source: Callable[[], KeyRing]) -> None:
    """Name the function that returns the current key ring (the core app passes `vault.keyring`)."""
    global _ring_source
    _ring_source = source


def _ring() -> KeyRing:
    if _ring_source is None:
        raise KeyRingError("the audit key source is not registered: apps.core must be installed and ready")
    return _ring_source()


def _derive(master: bytes, info: bytes) -> bytes:
    cache_key = (hashlib.sha256(master).digest(), info)  # keyed by a digest: no second copy of the key
    key = _derived.get(cache_key)
    if key is None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)
        _derived[cache_key] = key
    return key


def chain_key(kid: str | None = None) -> tuple[str, bytes]:
    """`(kid, key)` for hashing entries: the active master key's, or `kid`'s (KeyRingError if absent)."""
    ring = _ring()
    kid = kid or ring.active_kid
    return kid, _derive(ring.key(kid), CHAIN_INFO)


def checkpoint_key(kid: str | None = None) -> tuple[str, bytes]:
    """`(kid, key)` for signing checkpoints and the verifier's own state file."""
    ring = _ring()
    kid = kid or ring.active_kid
    return kid, _derive(ring.key(kid), CHECKPOINT_INFO)


def canonical_content(row: Sequence) -> bytes:
    """The bytes an entry's hash covers, from its values in `CANONICAL_FIELDS` order as the database
    returns them (so the writer and the verifier hash exactly the same thing)."""
    body = dict(zip(CANONICAL_FIELDS, row, strict=True))
    stamp = body["timestamp"]
    body["timestamp"] = stamp.isoformat(timespec="microseconds") if stamp is not None else None
    return _ENCODER.encode(body).encode()


def entry_mac(key: bytes, prev_hash: str, row: Sequence) -> str:
    base = _macs.get(key)
    if base is None:
        base = _macs[key] = hmac.new(key, digestmod=hashlib.sha256)
    mac = base.copy()
    mac.update(prev_hash.encode())
    mac.update(canonical_content(row))
    return mac.hexdigest()


def sign(key: bytes, body: dict) -> str:
    """HMAC of a JSON object (sorted keys, compact): checkpoints and the verifier's state."""
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()
