"""Micro-benchmark: vault decryption vs plain chunked streaming.

Run from the repo root:  python -m bench.vault_crypto [size_mb]

Every variant reads a file from the (warm) page cache in 1 MiB chunks and
writes to the same null sink, so the difference is the crypto cost alone.
Best of ``repeats`` runs is reported, to damp noise on shared CPUs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from apps.core.crypto import (
    DEFAULT_CHUNK_SIZE,
    KeyRing,
    decrypt_file,
    decrypt_stream,
    encrypt_file,
)

MiB = 1 << 20


class _NullSink:
    def write(self, data: Any) -> int:
        return len(data)


def _best(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def benchmark(size_mb: int = 100, repeats: int = 7) -> dict[str, Any]:
    ring = KeyRing.generate("bench")
    ctx = b"bench-artifact"
    with tempfile.TemporaryDirectory(prefix="pvlt-bench-", dir="/tmp") as tmp:
        plain_path, enc_path = os.path.join(tmp, "plain"), os.path.join(tmp, "enc")
        with open(plain_path, "wb") as f:
            f.writelines(os.urandom(MiB) for _ in range(size_mb))

        def plain_stream() -> None:
            buf = memoryview(bytearray(DEFAULT_CHUNK_SIZE))
            sink = _NullSink()
            with open(plain_path, "rb") as src:
                while n := src.readinto(buf):
                    sink.write(buf[:n])

        def plain_copy_to_file() -> None:  # context: a real (page-cache) sink
            buf = memoryview(bytearray(DEFAULT_CHUNK_SIZE))
            with open(plain_path, "rb") as src, open(enc_path + ".copy", "wb") as dst:
                while n := src.readinto(buf):
                    dst.write(buf[:n])

        def encrypt() -> None:  # includes the plaintext sha256
            with open(plain_path, "rb") as src:
                encrypt_file(src, _NullSink(), ring, ctx)

        with open(plain_path, "rb") as src, open(enc_path, "wb") as dst:
            result = encrypt_file(src, dst, ring, ctx)

        def dec_stream() -> None:
            sink = _NullSink()
            with open(enc_path, "rb") as src:
                for piece in decrypt_stream(src, result.wrapped_key, ring, ctx):
                    sink.write(piece)

        def dec_file() -> None:
            with open(enc_path, "rb") as src:
                decrypt_file(src, _NullSink(), result.wrapped_key, ring, ctx)

        def sha256_only() -> None:  # context: what encrypt_file's hashing costs
            h = hashlib.sha256()
            with open(plain_path, "rb") as src:
                while chunk := src.read(DEFAULT_CHUNK_SIZE):
                    h.update(chunk)

        plain_stream(), dec_stream(), dec_file()  # warm-up
        t = {
            "plain_stream": _best(plain_stream, repeats),
            "decrypt_stream": _best(dec_stream, repeats),
            "decrypt_file": _best(dec_file, repeats),
            "plain_copy_to_file": _best(plain_copy_to_file, repeats),
            "encrypt_file": _best(encrypt, repeats),
            "sha256_only": _best(sha256_only, repeats),
        }
    report = {
        "size_mb": size_mb,
        "chunk_size": DEFAULT_CHUNK_SIZE,
        "ciphertext_overhead_bytes": result.ciphertext_size - result.plaintext_size,
        "seconds": {k: round(v, 4) for k, v in t.items()},
        "mb_per_s": {k: round(size_mb / v, 1) for k, v in t.items()},
        "overhead_vs_plain_stream_pct": {
            k: round((t[k] / t["plain_stream"] - 1) * 100, 1)
            for k in ("decrypt_stream", "decrypt_file", "plain_copy_to_file")
        },
        "target_pct": 30,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    benchmark(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
