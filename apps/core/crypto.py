"""Streaming AES-256-GCM envelope encryption for the artifact vault.

Pure Python + ``cryptography``; deliberately free of Django so it can be
tested and benchmarked in isolation.  The Django glue stores the
``WrappedKey`` string in a DB column and the blob in any file storage.

Envelope: every artifact gets a fresh 256-bit data key (DEK), sealed with a
master key (KEK) from a ``KeyRing``.  Rotating master keys only rewraps the
~90-byte key record, never the blob.

Blob layout (integers big-endian)::

    header  = b"PVLT" | version:u8 (=1) | chunk_size:u32 | nonce_prefix:8
    chunk_i = AES-GCM(DEK, nonce = nonce_prefix | i:u32,
                      aad = header | i:u32 | final:u8) -> ciphertext | tag:16

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the
last holds 0..chunk_size and is the only one sealed with ``final=1`` (empty
plaintext -> one empty final chunk).  Binding header, index and final flag
into every tag makes reordering, duplication, truncation at a chunk boundary,
header edits and trailing junk all fail authentication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apps.core.errors import IntegrityFailure

MAGIC = b"PVLT"
VERSION = 1
DEFAULT_CHUNK_SIZE = 1 << 20
# The header is only authenticated with chunk 0, so cap what a forged header
# can make us allocate before that.
MAX_CHUNK_SIZE = 64 << 20
KEY_SIZE = 32
TAG_SIZE = 16
_HEADER = struct.Struct(">4sBI8s")
HEADER_SIZE = _HEADER.size  # 17
_CHUNK_META = struct.Struct(">IB")  # counter, final flag
_WRAP_PREFIX = "pvk1"
_WRAP_AAD = b"pvlt-dek-v1\x00"
# No '.', ':' or ',' so a kid can sit in spec and record strings unescaped.
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")

Reader = Callable[[memoryview], int]


class VaultError(Exception):
    """Base class for every vault crypto failure."""


class KeyRingError(VaultError):
    """Malformed key ring spec, or a master key that is not in the ring."""


class IntegrityError(VaultError, IntegrityFailure):
    """Blob or wrapped key failed authentication or parsing.

    Unrelated to ``django.db.IntegrityError``: import it qualified. It is the domain's
    `IntegrityFailure` too, so every boundary answers 500 with none of the blob's bytes.
    """


def _b64d(text: str) -> bytes:
    # Accept standard and URL-safe alphabets, with or without padding.
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check_kid(kid: str) -> str:
    if not isinstance(kid, str) or not _KID_RE.match(kid):
        raise KeyRingError(f"invalid key id {kid!r}: use 1-32 of A-Z a-z 0-9 _ -")
    return kid


def _new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class KeyRing:
    """Master keys (KEKs) by key id; the active one wraps new data keys."""

    __slots__ = ("_active", "_keys")

    def __init__(self, keys: Mapping[str, bytes], active_kid: str) -> None:
        if not keys:
            raise KeyRingError("key ring is empty")
        for kid, key in keys.items():
            _check_kid(kid)
            if len(key) != KEY_SIZE:
                raise KeyRingError(f"master key {kid!r} must be {KEY_SIZE} bytes (AES-256), got {len(key)}")
        if active_kid not in keys:
            raise KeyRingError(f"active key id {active_kid!r} is not in the key ring ({', '.join(keys)})")
        self._keys = {kid: bytes(key) for kid, key in keys.items()}
        self._active = active_kid

    @classmethod
    def from_spec(cls, spec: str, active_kid: str | None = None) -> KeyRing:
        """Parse ``"kid1:base64key,kid2:base64key"``; first is active by default."""
        keys: dict[str, bytes] = {}
        entries = [e.strip() for e in (spec or "").split(",") if e.strip()]
        if not entries:
            raise KeyRingError("key ring spec is empty: expected 'kid:base64key,...'")
        for pos, entry in enumerate(entries, 1):
            kid, sep, b64 = entry.partition(":")
            if not sep or not kid.strip():
                # Never echo the entry: it may be a bare key.
                raise KeyRingError(f"key ring spec entry {pos} is not 'kid:base64key'")
            kid = _check_kid(kid.strip())
            if kid in keys:
                raise KeyRingError(f"duplicate key id {kid!r} in key ring spec")
            try:
                keys[kid] = _b64d(b64)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"master key {kid!r} is not valid base64") from None
        return cls(keys, next(iter(keys)) if active_kid is None else active_kid)

    @classmethod
    def generate(cls, kid: str | None = None) -> KeyRing:
        """A ring holding one fresh random key (kid defaults to ``k<8 hex>``)."""
        kid = _check_kid(kid or f"k{secrets.token_hex(4)}")
        return cls({kid: _new_key()}, kid)

    def to_spec(self) -> str:
        # Active key first, so from_spec(to_spec()) keeps it active.
        order = [self._active, *(k for k in self._keys if k != self._active)]
        return ",".join(f"{k}:{base64.b64encode(self._keys[k]).decode()}" for k in order)

    def with_key(self, kid: str, key: bytes | None = None, activate: bool = True) -> KeyRing:
        """Copy plus ``kid`` (random key unless given), made active by default."""
        if kid in self._keys:
            raise KeyRingError(f"key id {kid!r} is already in the key ring")
        keys = {**self._keys, kid: _new_key() if key is None else key}
        return KeyRing(keys, kid if activate else self._active)

    def without(self, kid: str) -> KeyRing:
        """Copy minus ``kid``: retire a key once nothing is wrapped under it."""
        self.key(kid)
        if kid == self._active:
            raise KeyRingError(f"cannot remove the active key {kid!r}")
        return KeyRing({k: v for k, v in self._keys.items() if k != kid}, self._active)

    @property
    def active_kid(self) -> str:
        return self._active

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def key(self, kid: str) -> bytes:
        try:
            return self._keys[kid]
        except KeyError:
            raise KeyRingError(
                f"master key {kid!r} is not in the key ring "
                f"(have: {', '.join(self._keys)}); it may have been retired "
                "before every artifact was rewrapped"
            ) from None

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __repr__(self) -> str:  # never show key material
        return f"KeyRing(kids={list(self._keys)!r}, active={self._active!r})"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key sealed under master key ``kid`` (ciphertext = key + tag)."""

    kid: str
    nonce: bytes
    ciphertext: bytes

    def to_string(self) -> str:
        """``pvk1.<kid>.<b64url nonce>.<b64url ciphertext>`` (about 90 chars)."""
        parts = (_WRAP_PREFIX, self.kid, _b64url(self.nonce), _b64url(self.ciphertext))
        return ".".join(parts)

    @classmethod
    def from_string(cls, text: str) -> WrappedKey:
        parts = text.strip().split(".") if isinstance(text, str) else []
        if len(parts) != 4 or parts[0] != _WRAP_PREFIX:
            raise IntegrityError("wrapped key record is malformed: expected 'pvk1.<kid>.<nonce>.<key>'")
        return cls._parse(*parts[1:])

    def to_dict(self) -> dict[str, Any]:
        nonce, ct = _b64url(self.nonce), _b64url(self.ciphertext)
        return {"v": 1, "kid": self.kid, "nonce": nonce, "ct": ct}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WrappedKey:
        try:
            version, kid, nonce, ct = data["v"], data["kid"], data["nonce"], data["ct"]
        except (KeyError, TypeError):
            raise IntegrityError("wrapped key record is malformed: needs v, kid, nonce and ct") from None
        if version != 1:
            raise IntegrityError(f"wrapped key record has unsupported version {version!r}")
        return cls._parse(kid, nonce, ct)

    @classmethod
    def _parse(cls, kid: str, nonce: str, ct: str) -> WrappedKey:
        try:
            wk = cls(_check_kid(kid), _b64d(nonce), _b64d(ct))
        except (VaultError, binascii.Error, ValueError, AttributeError) as exc:
            raise IntegrityError(f"wrapped key record is malformed: {exc}") from None
        if len(wk.nonce) != 12 or len(wk.ciphertext) != KEY_SIZE + TAG_SIZE:
            raise IntegrityError("wrapped key record is malformed: bad field length")
        return wk


def _wrap_aad(kid: str, context: bytes) -> bytes:
    if not isinstance(context, (bytes, bytearray, memoryview)):
        raise TypeError(f"context must be bytes, got {type(context).__name__}")
    # A kid never contains NUL, so the kid/context boundary is unambiguous.
    return _WRAP_AAD + kid.encode("ascii") + b"\x00" + bytes(context)


def _wrap(dek: bytes, ring: KeyRing, context: bytes, kid: str | None) -> WrappedKey:
    kid = kid or ring.active_kid
    nonce = os.urandom(12)
    sealed = AESGCM(ring.key(kid)).encrypt(nonce, dek, _wrap_aad(kid, context))
    return WrappedKey(kid, nonce, sealed)


def _unwrap(wrapped: WrappedKey, ring: KeyRing, context: bytes) -> bytes:
    kek = AESGCM(ring.key(wrapped.kid))
    try:
        aad = _wrap_aad(wrapped.kid, context)
        return kek.decrypt(wrapped.nonce, wrapped.ciphertext, aad)
    except InvalidTag:
        raise IntegrityError(
            f"wrapped data key (master key {wrapped.kid!r}) failed authentication: "
            "wrong context/artifact, wrong key material for that kid, or tampering"
        ) from None


def rewrap(wrapped: WrappedKey, keyring: KeyRing, context: bytes, new_kid: str | None = None) -> WrappedKey:
    """Re-seal the data key under the active (or ``new_kid``) master key.

    The blob is untouched; this is the whole of a master key rotation.
    """
    return _wrap(_unwrap(wrapped, keyring, context), keyring, context, new_kid)


@dataclass(frozen=True, slots=True)
class EncryptResult:
    wrapped_key: WrappedKey
    plaintext_size: int
    sha256_of_plaintext: str  # hex digest
    ciphertext_size: int

    @property
    def sha256(self) -> str:
        return self.sha256_of_plaintext


def _file_reader(src: Any) -> Reader:
    """Fill a view completely unless EOF: pipes and sockets return short reads."""
    readinto = getattr(src, "readinto", None)

    def fill(view: memoryview) -> int:
        got = 0
        while got < len(view):
            if readinto is not None:
                n = readinto(view[got:])
            else:  # read()-only objects (e.g. botocore StreamingBody): one copy
                data = src.read(len(view) - got)
                n = len(data)
                view[got : got + n] = data
            if not n:
                break
            got += n
        return got

    return fill


def _iter_reader(src: Iterable[bytes]) -> Reader:
    """Re-chunk an iterable of arbitrarily sized byte strings."""
    is_buf = isinstance(src, (bytes, bytearray, memoryview))
    pieces, pending = iter([src] if is_buf else src), bytearray()

    def fill(view: memoryview) -> int:
        while len(pending) < len(view) and (piece := next(pieces, None)) is not None:
            pending.extend(piece)
        n = min(len(pending), len(view))
        with memoryview(pending) as mv:  # released before the resize below
            view[:n] = mv[:n]
        del pending[:n]
        return n

    return fill


def _reader(src: BinaryIO | Iterable[bytes]) -> Reader:
    return _file_reader(src) if hasattr(src, "read") else _iter_reader(src)


def _blocks(fill: Reader, size: int) -> Iterator[tuple[int, memoryview, bool]]:
    """Yield ``(index, block, is_final)``; blocks are ``size`` bytes but the last.

    A short block is final; a full one is final only if EOF follows, so one
    block of lookahead is needed.  Two buffers alternate: a yielded view stays
    valid until the next one is requested, with no per-block allocation.
    """
    bufs = (memoryview(bytearray(size)), memoryview(bytearray(size)))
    cur, index, n = 0, 0, fill(bufs[0])
    while True:
        final = n < size
        nxt = 0 if final else fill(bufs[cur ^ 1])
        final = final or not nxt
        yield index, bufs[cur][:n], final
        if final:
            return
        cur, n, index = cur ^ 1, nxt, index + 1


class _Blob:
    """Per-blob AEAD state: derives each chunk's nonce and AAD."""

    __slots__ = ("aes", "chunk_size", "header")

    def __init__(self, dek: bytes, header: bytes, chunk_size: int) -> None:
        self.aes, self.header, self.chunk_size = AESGCM(dek), header, chunk_size

    def params(self, index: int, final: bool) -> tuple[bytes, bytes]:
        if index >> 32:
            raise VaultError("artifact too large for the chunk counter")
        meta = _CHUNK_META.pack(index, final)
        return self.header[9:] + meta[:4], self.header + meta


def _new_blob(ring: KeyRing, context: bytes, chunk_size: int) -> tuple[WrappedKey, _Blob]:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise VaultError(f"chunk_size must be 1..{MAX_CHUNK_SIZE}, got {chunk_size}")
    dek = _new_key()
    wrapped = _wrap(dek, ring, context, None)  # a bad ring fails before any I/O
    header = _HEADER.pack(MAGIC, VERSION, chunk_size, os.urandom(8))
    return wrapped, _Blob(dek, header, chunk_size)


def encrypt_stream(
    src: BinaryIO | Iterable[bytes],
    keyring: KeyRing,
    context: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[WrappedKey, Iterator[bytes]]:
    """Encrypt lazily: store the key record, write the pieces anywhere in order.

    ``src`` is a binary file object (``readinto`` preferred, ``read`` works) or
    an iterable of byte strings.  Pieces are independent ``bytes`` objects; the
    first is the header.
    """
    wrapped, blob = _new_blob(keyring, context, chunk_size)

    def pieces() -> Iterator[bytes]:
        yield blob.header
        for index, chunk, final in _blocks(_reader(src), chunk_size):
            nonce, aad = blob.params(index, final)
            yield blob.aes.encrypt(nonce, chunk, aad)

    return wrapped, pieces()


def encrypt_file(
    src: BinaryIO | Iterable[bytes],
    dst: BinaryIO,
    keyring: KeyRing,
    context: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> EncryptResult:
    """Encrypt ``src`` into ``dst`` in one pass, hashing the plaintext on the way."""
    wrapped, blob = _new_blob(keyring, context, chunk_size)
    digest = hashlib.sha256()
    memory = _memory_view(src)
    if memory is not None:  # bytes or BytesIO (training checkpoints): slice it, copy nothing
        with memory:
            blocks = _memory_blocks(memory, chunk_size)
            return _seal(blob, wrapped, blocks, dst, digest, min(len(memory), chunk_size))
    return _seal(blob, wrapped, _blocks(_reader(src), chunk_size), dst, digest, chunk_size)


def _seal(blob, wrapped, blocks, dst: BinaryIO, digest, largest: int) -> EncryptResult:
    out = memoryview(bytearray(largest + TAG_SIZE))  # reused by encrypt_into
    dst.write(blob.header)
    plain = sealed_total = 0
    for index, chunk, final in blocks:
        digest.update(chunk)
        nonce, aad = blob.params(index, final)
        sealed = out[: len(chunk) + TAG_SIZE]
        blob.aes.encrypt_into(nonce, chunk, aad, sealed)
        dst.write(sealed)
        plain += len(chunk)
        sealed_total += len(sealed)
    return EncryptResult(wrapped, plain, digest.hexdigest(), HEADER_SIZE + sealed_total)


def _memory_view(src) -> memoryview | None:
    """The unread bytes of an in-memory source as a view (None for streams). A BytesIO made from
    a bytes object hands that object back from getvalue() without copying."""
    if isinstance(src, bytes | bytearray | memoryview):
        return memoryview(src).cast("B")
    if isinstance(src, io.BytesIO):
        start, data = src.tell(), src.getvalue()
        src.seek(0, io.SEEK_END)  # consumed, as reading it would leave it
        return memoryview(data)[start:]
    return None


def _memory_blocks(view: memoryview, size: int) -> Iterator[tuple[int, memoryview, bool]]:
    """The same ``(index, block, is_final)`` sequence as ``_blocks`` for data already in memory."""
    last = max(len(view) - 1, 0) // size
    for index in range(last + 1):
        yield index, view[index * size : (index + 1) * size], index == last


def _open_blob(src: BinaryIO, wrapped: WrappedKey, ring: KeyRing, context: bytes) -> _Blob:
    dek = _unwrap(wrapped, ring, context)
    head = memoryview(bytearray(HEADER_SIZE))
    if _file_reader(src)(head) != HEADER_SIZE:
        raise IntegrityError("artifact blob is truncated: incomplete header")
    magic, version, chunk_size, _ = _HEADER.unpack(head)
    problem = ""
    if magic != MAGIC:
        problem = "not a vault blob (bad magic)"
    elif version != VERSION:
        problem = f"unsupported format version {version}"
    elif not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        problem = f"implausible chunk size {chunk_size}"
    if problem:
        raise IntegrityError(f"artifact blob failed its integrity check: {problem}")
    return _Blob(dek, bytes(head), chunk_size)


def _plaintext(src: BinaryIO, blob: _Blob, out: memoryview | None) -> Iterator[bytes | memoryview]:
    """Authenticate then yield each chunk: fresh ``bytes``, or views of ``out``."""
    for index, sealed, final in _blocks(_file_reader(src), blob.chunk_size + TAG_SIZE):
        nonce, aad = blob.params(index, final)
        try:
            if len(sealed) < TAG_SIZE:  # cut inside a tag: cannot even try
                raise InvalidTag
            if out is None:
                plain: bytes | memoryview = blob.aes.decrypt(nonce, sealed, aad)
            else:
                plain = out[: len(sealed) - TAG_SIZE]
                blob.aes.decrypt_into(nonce, sealed, aad, plain)
        except InvalidTag:
            raise IntegrityError(
                f"artifact blob failed its integrity check at chunk {index}: it was modified or truncated"
            ) from None
        if plain:
            yield plain


def decrypt_stream(src: BinaryIO, wrapped: WrappedKey, keyring: KeyRing, context: bytes) -> Iterator[bytes]:
    """Yield authenticated plaintext chunk by chunk (independent ``bytes``).

    The key is unwrapped and the header read *now*, so a wrong key or context
    fails before e.g. a streaming response starts.  Each chunk is verified
    before it is yielded, but truncation is only provable at the end: on
    ``IntegrityError`` discard everything already consumed.
    """
    blob = _open_blob(src, wrapped, keyring, context)
    return cast("Iterator[bytes]", _plaintext(src, blob, None))


def decrypt_file(src: BinaryIO, dst: BinaryIO, wrapped: WrappedKey, keyring: KeyRing, context: bytes) -> int:
    """Decrypt into ``dst`` through one reused buffer; return plaintext size.

    Same contract as ``decrypt_stream``: after ``IntegrityError``, ``dst`` holds
    a verified but possibly incomplete prefix and must be discarded.
    """
    blob = _open_blob(src, wrapped, keyring, context)
    total = 0
    for plain in _plaintext(src, blob, memoryview(bytearray(blob.chunk_size))):
        dst.write(plain)
        total += len(plain)
    return total
