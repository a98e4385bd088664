"""Artifact download benchmark: decrypting vault download vs streaming the same plaintext file.

    python -m bench.catalog_download                       # full: 100 MB, 3 rounds of 30 s windows
    python -m bench.catalog_download --size-mb 5 --seconds 3 --rounds 1 --warmup 1   # smoke
    python -m bench.catalog_download 100                   # the old form: size in MB

Both downloads go through the same HTTP path: uvicorn (httptools, uvloop, one process) pinned to
CPU 0 serving the portal over ASGI, token auth, DRF view, permission check, audit entry and
`vault.streaming_response`; the only difference is the body source (decrypting the vault blob vs
reading the plaintext file). Each body is checked once (size and SHA-256, not timed); then `wrk`
on CPU 1 downloads back to back on one keep-alive connection: per round a warm-up window and a
measured window for each kind, the order alternating between rounds so that drift hits both.
Figures: MB/s per kind, the median of the rounds with the spread, and the overhead per round.
Goal: decrypting costs < 30% over plaintext. Everything (database, vault, the plaintext file,
logs) lives in the run's temporary directory, removed at the end (bench.common.portal_env), so a
run leaves nothing under /tmp. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
import urllib.request

from bench import wrk

UVICORN = ["-m", "uvicorn", "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning",
           "--http", "httptools", "--loop", "uvloop"]  # fmt: skip


def _check(url: str, headers: dict, expected_size: int, expected_sha: str) -> None:
    """Not timed: the body is the artifact, byte for byte."""
    digest, total = hashlib.sha256(), 0
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=300) as response:  # noqa: S310  http URL of the loopback server this bench started
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            total += len(chunk)
    if total != expected_size or digest.hexdigest() != expected_sha:
        raise RuntimeError(f"{url} returned {total} bytes, sha256 {digest.hexdigest()[:12]}")


def run(size_mb: int = 100, rounds: int = 3, seconds: int = 30, warmup: int = 5) -> dict:
    from bench.common import portal_env, server

    wrk.require()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with portal_env() as env:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from apps.accounts.services import token_create
        from apps.catalog.models import ModelVersion
        from apps.catalog.services import model_create
        from apps.core import vault
        from apps.core.embedded_redis import free_port

        var = os.environ["PORTAL_VAR_DIR"]  # removed with everything in it when portal_env exits
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
        import django.db

        django.db.connections.close_all()
        headers = {"Authorization": f"Token {key}"}
        port = free_port()
        env = {**env, "CATALOG_BENCH_PLAINTEXT": plain_path, "PYTHONPATH": os.getcwd()}
        args = wrk.pinned([sys.executable, *UVICORN, "--port", str(port), "bench.catalog_download_asgi:application"])
        base = f"http://127.0.0.1:{port}"
        urls = {
            "plain": f"{base}/bench/plain/bench-big/1",
            "vault": f"{base}/api/v1/models/bench-big/versions/1/artifact",
        }
        runs: dict[str, list[dict]] = {"plain": [], "vault": []}
        loads = [wrk.load_average()]
        with server(args, env, port):
            for url in urls.values():
                _check(url, headers, size_mb << 20, blob.sha256)
            for i in range(rounds):
                for kind in ("plain", "vault") if i % 2 == 0 else ("vault", "plain"):
                    if warmup:
                        wrk.run(urls[kind], seconds=warmup, connections=1, headers=headers, timeout_s=120)
                    result = wrk.run(urls[kind], seconds=seconds, connections=1, headers=headers, timeout_s=120)
                    if result["errors"] or not result["requests"]:
                        raise RuntimeError(f"{kind}: {result['errors']} errors, {result['requests']} downloads")
                    result["mb_per_s"] = round(result["rps"] * size_mb, 1)
                    runs[kind].append(result)
                loads.append(wrk.load_average())

    def summary(each: list[dict]) -> dict:
        return {
            **wrk.summarise(each, keys=("mb_per_s", "p50_ms", "max_ms")),
            "downloads": sum(r["requests"] for r in each),
        }

    overheads = [p["mb_per_s"] / v["mb_per_s"] - 1 for p, v in zip(runs["plain"], runs["vault"], strict=True)]
    overhead = statistics.median(overheads)
    return {
        "date": started,
        "size_mb": size_mb,
        "method": (
            f"uvicorn on CPU {wrk.SERVER_CPU}, wrk -t1 -c1 on CPU {wrk.LOAD_CPU} downloading back to back; "
            f"{rounds} rounds (order alternating) of a {warmup} s warm-up and a {seconds} s window per kind"
        ),  # fmt: skip
        "plaintext_stream": summary(runs["plain"]),
        "vault_decrypt_stream": summary(runs["vault"]),
        "overhead": {
            "median": round(overhead, 3),
            "min": round(min(overheads), 3),
            "max": round(max(overheads), 3),
            "per_round": [round(o, 3) for o in overheads],
        },  # fmt: skip
        "load_average_1_5_15": loads,
        "goal": "decrypting download costs < 30% over the plaintext stream (throughput)",
        "goal_met_in_rounds": f"{sum(o < 0.30 for o in overheads)} of {len(overheads)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="?", type=int, help="artifact size in MB (same as --size-mb)")
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.size or args.size_mb, args.rounds, args.seconds, args.warmup), indent=2))


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
