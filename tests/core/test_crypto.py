"""Tests for apps.core.crypto (pure Python, no Django needed)."""

from __future__ import annotations

import base64
import hashlib
import io
import os

import pytest

from apps.core import crypto
from apps.core.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    IntegrityError,
    KeyRing,
    KeyRingError,
    VaultError,
    WrappedKey,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
    encrypt_stream,
    rewrap,
)

CHUNK = 1024
CTX = b"artifact:42"


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate("k1")


def _encrypt(data: bytes, ring: KeyRing, ctx: bytes = CTX) -> tuple[WrappedKey, bytes]:
    wrapped, pieces = encrypt_stream(io.BytesIO(data), ring, ctx, chunk_size=CHUNK)
    return wrapped, b"".join(pieces)


def _decrypt(blob: bytes, wrapped: WrappedKey, ring: KeyRing, ctx: bytes = CTX) -> bytes:
    return b"".join(decrypt_stream(io.BytesIO(blob), wrapped, ring, ctx))


def _chunk_offsets(blob: bytes) -> list[tuple[int, int]]:
    """(start, end) of every sealed chunk in a CHUNK-sized blob."""
    out, pos = [], HEADER_SIZE
    while pos < len(blob):
        end = min(pos + CHUNK + TAG_SIZE, len(blob))
        out.append((pos, end))
        pos = end
    return out


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17, 4 * CHUNK]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(ring: KeyRing, size: int) -> None:
    data = os.urandom(size)
    wrapped, blob = _encrypt(data, ring)
    chunks = max(1, -(-size // CHUNK))
    assert len(blob) == HEADER_SIZE + size + chunks * TAG_SIZE
    assert _decrypt(blob, wrapped, ring) == data


@pytest.mark.parametrize("size", SIZES)
def test_file_helpers_match_stream(ring: KeyRing, size: int) -> None:
    data = os.urandom(size)
    dst = io.BytesIO()
    res = encrypt_file(io.BytesIO(data), dst, ring, CTX, chunk_size=CHUNK)
    assert res.plaintext_size == size
    assert res.sha256_of_plaintext == res.sha256 == hashlib.sha256(data).hexdigest()
    assert res.ciphertext_size == len(dst.getvalue())
    assert _decrypt(dst.getvalue(), res.wrapped_key, ring) == data
    out = io.BytesIO()
    n = decrypt_file(io.BytesIO(dst.getvalue()), out, res.wrapped_key, ring, CTX)
    assert (n, out.getvalue()) == (size, data)


def test_iterable_source_rechunks_odd_pieces(ring: KeyRing) -> None:
    data = os.urandom(3 * CHUNK + 5)
    pieces = [data[i : i + 333] for i in range(0, len(data), 333)] + [b""]
    wrapped, it = encrypt_stream(iter(pieces), ring, CTX, chunk_size=CHUNK)
    blob = b"".join(it)
    assert len(blob) == HEADER_SIZE + len(data) + 4 * TAG_SIZE
    assert _decrypt(blob, wrapped, ring) == data


class _ShortReads(io.RawIOBase):
    """File object whose read()/readinto() return at most 100 bytes, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        chunk = self._buf.read(min(len(b), 100))
        b[: len(chunk)] = chunk
        return len(chunk)


class _ReadOnly:
    """Like botocore's StreamingBody: read(n) only, no readinto."""

    def __init__(self, data: bytes) -> None:
        self.read = io.BytesIO(data).read


@pytest.mark.parametrize("wrapper", [_ShortReads, _ReadOnly])
def test_short_and_read_only_sources(ring: KeyRing, wrapper: type) -> None:
    data = os.urandom(3 * CHUNK + 1)
    wrapped, pieces = encrypt_stream(wrapper(data), ring, CTX, chunk_size=CHUNK)
    blob = b"".join(pieces)
    assert b"".join(decrypt_stream(wrapper(blob), wrapped, ring, CTX)) == data
    out = io.BytesIO()
    assert decrypt_file(wrapper(blob), out, wrapped, ring, CTX) == len(data)
    assert out.getvalue() == data


def test_bytes_source(ring: KeyRing) -> None:
    wrapped, pieces = encrypt_stream(b"hello vault", ring, CTX, chunk_size=4)
    blob = b"".join(pieces)
    assert len(blob) == HEADER_SIZE + 11 + 3 * TAG_SIZE
    assert _decrypt(blob, wrapped, ring) == b"hello vault"


def test_decrypt_yields_chunk_by_chunk(ring: KeyRing) -> None:
    data = os.urandom(3 * CHUNK + 1)
    wrapped, blob = _encrypt(data, ring)
    assert [len(p) for p in decrypt_stream(io.BytesIO(blob), wrapped, ring, CTX)] == [CHUNK] * 3 + [1]


def test_header_format(ring: KeyRing) -> None:
    _, blob = _encrypt(b"x", ring)
    assert blob[:4] == b"PVLT" and blob[4] == 1
    assert int.from_bytes(blob[5:9], "big") == CHUNK


def test_ciphertext_hides_plaintext(ring: KeyRing) -> None:
    data = b"SECRET-MODEL-WEIGHTS " * 200
    _, blob = _encrypt(data, ring)
    assert b"SECRET" not in blob
    assert data[:64] not in blob
    # Fresh DEK + nonce prefix every time: same input, different blobs.
    assert _encrypt(data, ring)[1] != blob


def _blob(ring: KeyRing) -> tuple[bytes, WrappedKey, bytes]:
    data = os.urandom(4 * CHUNK + 100)  # 5 chunks, the last one short
    wrapped, blob = _encrypt(data, ring)
    return data, wrapped, blob


def _assert_rejected(blob: bytes, wrapped: WrappedKey, ring: KeyRing, ctx: bytes = CTX) -> str:
    with pytest.raises(IntegrityError) as exc:
        _decrypt(blob, wrapped, ring, ctx)
    out = io.BytesIO()
    with pytest.raises(IntegrityError):
        decrypt_file(io.BytesIO(blob), out, wrapped, ring, ctx)
    return str(exc.value)


@pytest.mark.parametrize("size", [100, 4 * CHUNK + 100])
def test_every_header_byte_is_authenticated(ring: KeyRing, size: int) -> None:
    # With one short chunk a changed chunk_size does not change the parse, so
    # only the header-in-AAD binding can catch it.
    wrapped, blob = _encrypt(os.urandom(size), ring)
    for i in range(HEADER_SIZE):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        _assert_rejected(bytes(bad), wrapped, ring)


@pytest.mark.parametrize("where", ["first", "middle", "last", "middle_tag", "last_tag"])
def test_flipped_byte_in_chunks(ring: KeyRing, where: str) -> None:
    _, wrapped, blob = _blob(ring)
    spans = _chunk_offsets(blob)
    idx = {"first": 0, "middle": 2, "last": 4, "middle_tag": 2, "last_tag": 4}[where]
    start, end = spans[idx]
    pos = end - 3 if where.endswith("tag") else start + 7
    bad = bytearray(blob)
    bad[pos] ^= 0x80
    msg = _assert_rejected(bytes(bad), wrapped, ring)
    assert f"at chunk {idx}" in msg and "modified or truncated" in msg


def test_no_bytes_yielded_from_a_tampered_chunk(ring: KeyRing) -> None:
    data, wrapped, blob = _blob(ring)
    start, _ = _chunk_offsets(blob)[2]
    bad = bytearray(blob)
    bad[start] ^= 1
    got: list[bytes] = []
    with pytest.raises(IntegrityError, match="at chunk 2"):
        got.extend(decrypt_stream(io.BytesIO(bytes(bad)), wrapped, ring, CTX))
    assert b"".join(got) == data[: 2 * CHUNK]  # only the verified prefix


def test_truncation_and_appended_data(ring: KeyRing) -> None:
    _, wrapped, blob = _blob(ring)
    spans = _chunk_offsets(blob)
    _assert_rejected(blob[: spans[-1][0]], wrapped, ring)  # drop last chunk
    _assert_rejected(blob[: spans[2][0]], wrapped, ring)  # drop several
    _assert_rejected(blob[:-1], wrapped, ring)  # drop last byte
    _assert_rejected(blob[:HEADER_SIZE], wrapped, ring)  # header only
    _assert_rejected(blob[: HEADER_SIZE - 1], wrapped, ring)  # partial header
    _assert_rejected(b"", wrapped, ring)
    _assert_rejected(blob + b"\x00", wrapped, ring)  # appended byte
    _assert_rejected(blob + os.urandom(CHUNK + TAG_SIZE), wrapped, ring)


def test_truncation_of_exact_multiple_blob(ring: KeyRing) -> None:
    wrapped, blob = _encrypt(os.urandom(3 * CHUNK), ring)  # every chunk full
    _assert_rejected(blob[: -(CHUNK + TAG_SIZE)], wrapped, ring)
    _assert_rejected(blob + blob[-(CHUNK + TAG_SIZE) :], wrapped, ring)  # duplicated final


def test_swapped_and_duplicated_chunks(ring: KeyRing) -> None:
    _, wrapped, blob = _blob(ring)
    s = [blob[a:b] for a, b in _chunk_offsets(blob)]
    head = blob[:HEADER_SIZE]
    _assert_rejected(head + s[1] + s[0] + b"".join(s[2:]), wrapped, ring)
    _assert_rejected(head + s[0] + s[1] + s[1] + b"".join(s[3:]), wrapped, ring)
    _assert_rejected(head + b"".join(s[:3]) + s[3] + s[3] + s[4], wrapped, ring)


def test_chunks_from_another_blob_are_rejected(ring: KeyRing) -> None:
    _, wrapped, blob = _blob(ring)
    _, _, other = _blob(ring)
    a, b = _chunk_offsets(blob)[1]
    _assert_rejected(blob[:a] + other[a:b] + blob[b:], wrapped, ring)
    _assert_rejected(other, wrapped, ring)


def test_wrong_context_fails(ring: KeyRing) -> None:
    data, wrapped, blob = _blob(ring)
    with pytest.raises(IntegrityError, match="failed authentication"):
        decrypt_stream(io.BytesIO(blob), wrapped, ring, b"artifact:43")  # fails eagerly
    with pytest.raises(IntegrityError):
        rewrap(wrapped, ring, b"artifact:43")
    with pytest.raises(TypeError, match="context must be bytes"):
        encrypt_stream(io.BytesIO(data), ring, "artifact:42")  # type: ignore[arg-type]


def test_wrong_key_material_for_kid_fails(ring: KeyRing) -> None:
    _, wrapped, blob = _blob(ring)
    impostor = KeyRing.generate("k1")
    with pytest.raises(IntegrityError, match="'k1'"):
        _decrypt(blob, wrapped, impostor)


def test_rewrap_rotation_retires_old_key() -> None:
    old = KeyRing.generate("old")
    data = os.urandom(2 * CHUNK + 3)
    wrapped, blob = _encrypt(data, old)
    assert wrapped.kid == "old"

    rotated = old.with_key("new")
    assert rotated.active_kid == "new"
    new_wrapped = rewrap(wrapped, rotated, CTX)
    assert new_wrapped.kid == "new" and new_wrapped != wrapped

    retired = rotated.without("old")
    assert "old" not in retired
    assert _decrypt(blob, new_wrapped, retired) == data  # same blob, no old key
    with pytest.raises(KeyRingError, match="'old'"):
        _decrypt(blob, wrapped, retired)


def test_rewrap_to_named_kid() -> None:
    ring = KeyRing.generate("a").with_key("b", activate=False)
    wrapped, blob = _encrypt(b"hello", ring)
    assert wrapped.kid == "a"
    moved = rewrap(wrapped, ring, CTX, new_kid="b")
    assert moved.kid == "b"
    only_b = KeyRing.from_spec(ring.to_spec(), active_kid="b").without("a")
    assert _decrypt(blob, moved, only_b) == b"hello"
    with pytest.raises(KeyRingError, match="'zzz'"):
        rewrap(wrapped, ring, CTX, new_kid="zzz")


def test_unknown_kid_message(ring: KeyRing) -> None:
    _, wrapped, blob = _blob(ring)
    other = KeyRing.generate("k9")
    with pytest.raises(KeyRingError) as exc:
        decrypt_stream(io.BytesIO(blob), wrapped, other, CTX)
    assert "'k1'" in str(exc.value) and "not in the key ring" in str(exc.value)
    assert isinstance(exc.value, VaultError)


def _k() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_keyring_spec_round_trip() -> None:
    k1, k2 = _k(), _k()
    ring = KeyRing.from_spec(f" a:{k1} , b:{k2} ")
    assert ring.kids == ("a", "b") and ring.active_kid == "a"
    assert KeyRing.from_spec(f"a:{k1},b:{k2}", active_kid="b").active_kid == "b"
    again = KeyRing.from_spec(ring.to_spec())
    assert again.kids == ring.kids and again.key("b") == base64.b64decode(k2)
    # Active key is written first so it stays active.
    b_active = KeyRing.from_spec(f"a:{k1},b:{k2}", active_kid="b")
    assert KeyRing.from_spec(b_active.to_spec()).active_kid == "b"
    # URL-safe alphabet without padding is accepted.
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(k1)).decode().rstrip("=")
    assert KeyRing.from_spec(f"a:{urlsafe}").key("a") == base64.b64decode(k1)
    assert k1 not in repr(ring)


def test_generate() -> None:
    a, b = KeyRing.generate(), KeyRing.generate()
    assert a.active_kid != b.active_kid and len(a.key(a.active_kid)) == 32
    assert KeyRing.generate("mine").kids == ("mine",)


@pytest.mark.parametrize(
    ("spec", "active", "message"),
    [
        ("", None, "empty"),
        (" , ", None, "empty"),
        ("nokeyhere", None, "entry 1 is not"),
        (":" + "A" * 44, None, "entry 1 is not"),
        ("a:!!!notbase64!!!", None, "'a' is not valid base64"),
        ("a:" + base64.b64encode(b"short").decode(), None, "must be 32 bytes"),
        ("a:" + base64.b64encode(bytes(33)).decode(), None, "got 33"),
        (
            f"a:{base64.b64encode(bytes(32)).decode()},a:{base64.b64encode(bytes(32)).decode()}",
            None,
            "duplicate key id 'a'",
        ),
        (
            f"a:{base64.b64encode(bytes(32)).decode()}",
            "b",
            "active key id 'b' is not in the key ring",
        ),
        (f"bad.kid:{base64.b64encode(bytes(32)).decode()}", None, "invalid key id"),
    ],
)
def test_keyring_spec_errors(spec: str, active: str | None, message: str) -> None:
    with pytest.raises(KeyRingError, match=message.replace("(", r"\(")) as exc:
        KeyRing.from_spec(spec, active_kid=active)
    assert "AAAA" not in str(exc.value)  # never echo key material


def test_keyring_mutation_errors(ring: KeyRing) -> None:
    with pytest.raises(KeyRingError, match="already in the key ring"):
        ring.with_key("k1")
    with pytest.raises(KeyRingError, match="cannot remove the active key"):
        ring.without("k1")


def test_wrapped_key_serialisation(ring: KeyRing) -> None:
    data = b"payload"
    wrapped, blob = _encrypt(data, ring)
    text = wrapped.to_string()
    assert text.startswith("pvk1.k1.") and text.isascii() and len(text) < 100
    assert WrappedKey.from_string(text) == wrapped
    assert WrappedKey.from_dict(wrapped.to_dict()) == wrapped
    assert _decrypt(blob, WrappedKey.from_string(text), ring) == data


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "pvk2.k1.AAAA.AAAA",
        "pvk1.k1.AAAA",
        "pvk1.k1.!!!.AAAA",
        "pvk1.k1.AAAAAAAAAAAAAAAA.AAAA",
        "pvk1..a.b",
    ],
)
def test_wrapped_key_malformed(bad: str) -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        WrappedKey.from_string(bad)


def test_wrapped_key_malformed_dict() -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        WrappedKey.from_dict({"kid": "k1"})
    with pytest.raises(IntegrityError, match="unsupported version"):
        WrappedKey.from_dict({"v": 2, "kid": "k1", "nonce": "", "ct": ""})


def test_tampered_wrapped_key(ring: KeyRing) -> None:
    wrapped, blob = _encrypt(b"x", ring)
    ct = bytearray(wrapped.ciphertext)
    ct[0] ^= 1
    with pytest.raises(IntegrityError, match="failed authentication"):
        _decrypt(blob, WrappedKey(wrapped.kid, wrapped.nonce, bytes(ct)), ring)


def test_chunk_size_bounds(ring: KeyRing) -> None:
    for size in (0, crypto.MAX_CHUNK_SIZE + 1):
        with pytest.raises(VaultError, match="chunk_size"):
            encrypt_stream(io.BytesIO(b""), ring, CTX, chunk_size=size)
    wrapped, blob = _encrypt(b"abc", ring)
    forged = blob[:5] + (crypto.MAX_CHUNK_SIZE + 1).to_bytes(4, "big") + blob[9:]
    with pytest.raises(IntegrityError, match="implausible chunk size"):
        _decrypt(forged, wrapped, ring)


class _Stream(io.RawIOBase):
    """A file-like source that is not in memory (forces the buffered reader path)."""

    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self.inner.readinto(buffer)


@pytest.mark.parametrize("size", SIZES)
def test_in_memory_and_streamed_sources_seal_alike(ring: KeyRing, size: int) -> None:
    data = os.urandom(size)
    results = []
    for src in (data, io.BytesIO(data), _Stream(data), memoryview(bytearray(data))):
        dst = io.BytesIO()
        res = encrypt_file(src, dst, ring, CTX, chunk_size=CHUNK)
        assert _decrypt(dst.getvalue(), res.wrapped_key, ring) == data
        results.append((res.plaintext_size, res.ciphertext_size, res.sha256))
    assert len(set(results)) == 1  # same chunk layout, size and digest whatever the source


def test_bytesio_source_starts_at_its_position(ring: KeyRing) -> None:
    src = io.BytesIO(b"skip-me:payload")
    src.read(8)
    dst = io.BytesIO()
    res = encrypt_file(src, dst, ring, CTX, chunk_size=4)
    assert _decrypt(dst.getvalue(), res.wrapped_key, ring) == b"payload"
    assert src.read() == b""  # consumed, like a stream
