"""Artifact download benchmark: decrypting vault download vs streaming the same plaintext file.

Run from the repo root:  python -m bench.catalog_download [size_mb]   (default 100)

Both downloads go through the same HTTP path: uvicorn (one process) serving the portal over ASGI,
token auth, DRF view, permission check, audit entry and `vault.streaming_response`; the only
difference is the body source (decrypting the vault blob vs reading the plaintext file). The
client reads each body into one reused buffer on a keep-alive connection, alternating the two
kinds so that machine noise hits both alike. Goal: decrypting costs < 30% over plaintext.
Prints one JSON document.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import statistics
import sys
import time

ROUNDS = 7


def _fetch(conn: http.client.HTTPConnection, path: str, headers: dict, buffer: memoryview) -> tuple[float, int, str]:
    started = time.perf_counter()
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}: {response.read()[:300]!r}")
    digest, total = hashlib.sha256() if os.environ.get("BENCH_VERIFY") else None, 0
    while n := response.readinto(buffer):
        total += n
        if digest is not None:
            digest.update(buffer[:n])
    return time.perf_counter() - started, total, digest.hexdigest() if digest else ""


def run(size_mb: int = 100) -> dict:
    from bench.common import portal_env, server

    with portal_env() as env:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from apps.accounts.services import token_create
        from apps.catalog.models import ModelVersion
        from apps.catalog.services import model_create
        from apps.core import vault
        from apps.core.embedded_redis import free_port

        var = os.environ["PORTAL_VAR_DIR"]
        plain_path = os.path.join(var, "plain.bin")
        with open(plain_path, "wb") as out:
            for _ in range(size_mb):
                out.write(os.urandom(1 << 20))
        user = get_user_model().objects.create_user("bench-dl")
        user.groups.add(*Group.objects.filter(name="ml-engineers"))
        model = model_create(actor=user, name="bench-big")
        with open(plain_path, "rb") as src:
            blob = vault.blob_store(src, purpose="catalog.onnx")
        # Setup shortcut: the bench needs a big artifact, not a big valid ONNX graph.
        ModelVersion.objects.create(model=model, version=1, artifact=blob, signature={}, created_by=user)
        _, key = token_create(user=user, name="bench", scopes=["read"], expires_days=1)
        headers = {"Authorization": f"Token {key}"}
        port = free_port()
        env = {**env, "CATALOG_BENCH_PLAINTEXT": plain_path, "PYTHONPATH": os.getcwd()}
        args = [sys.executable, "-m", "uvicorn", "bench.catalog_download_asgi:application", "--port", str(port),
                "--no-access-log", "--log-level", "warning"]  # fmt: skip
        paths = {"plain": "/bench/plain/bench-big/1", "vault": "/api/v1/models/bench-big/versions/1/artifact"}
        times: dict[str, list[float]] = {"plain": [], "vault": []}
        with server(args, env, port):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            buffer = memoryview(bytearray(1 << 20))
            expected = size_mb << 20
            for kind in ("plain", "vault"):  # warm-up, and check the bodies once
                os.environ["BENCH_VERIFY"] = "1"
                _, total, digest = _fetch(conn, paths[kind], headers, buffer)
                if total != expected or digest != blob.sha256:
                    raise RuntimeError(f"{kind} download returned {total} bytes, sha256 {digest[:12]}")
            os.environ.pop("BENCH_VERIFY", None)
            for i in range(ROUNDS):
                for kind in ("plain", "vault") if i % 2 == 0 else ("vault", "plain"):
                    elapsed, total, _ = _fetch(conn, paths[kind], headers, buffer)
                    times[kind].append(elapsed)
            conn.close()

        def summary(values: list[float]) -> dict:
            med = statistics.median(values)
            return {"median_s": round(med, 4), "best_s": round(min(values), 4),
                    "median_mb_per_s": round(size_mb / med, 1)}  # fmt: skip

        plain, enc = summary(times["plain"]), summary(times["vault"])
        overhead = statistics.median(times["vault"]) / statistics.median(times["plain"]) - 1
        best_overhead = min(times["vault"]) / min(times["plain"]) - 1
        return {
            "size_mb": size_mb,
            "rounds": ROUNDS,
            "plaintext_stream": plain,
            "vault_decrypt_stream": enc,
            "overhead_median": round(overhead, 3),
            "overhead_best": round(best_overhead, 3),
            "goal": "decrypting download costs < 30% over the plaintext stream",
            "goal_met": overhead < 0.30,
        }


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 100), indent=2))
