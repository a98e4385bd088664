"""Online feature reads: in process vs Feast's SQLite online store, and over HTTP (fast path).

1. In process, 1 entity x 10 float features, 10,000 entities: `services.online_read` (token-less,
   but with the object permission check, validation and PII rules) vs Feast's
   `get_online_features(...).to_dict()` on the same shape of data, in the same run
   (Feast in bench/.venvs/feast, created on first use). 3 x 1,000 reads, median p50/p99.
2. Over HTTP on loopback with a token: uvicorn (httptools, uvloop) serving bench/features_asgi.py,
   an open-loop load at --rate requests/s on a precise schedule over a keep-alive connection;
   latency counted from each request's scheduled start (queueing included).
3. 100 entities x 10 features in one call over HTTP, sequential.

    .venv/bin/python bench/features_online.py [--rate 500] [--seconds 10] [--skip-feast]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import ensure_venv, portal_env  # noqa: E402

N_ENTITIES = 10_000
FEATS = [f"f{k}" for k in range(10)]

FEAST = r"""
import json, os, random, statistics, sys, time
import numpy as np, pandas as pd
from datetime import datetime, timedelta, timezone
os.chdir(sys.argv[1]); os.makedirs("feast_repo/data", exist_ok=True)
data = os.path.abspath("feast_repo/data")
open("feast_repo/feature_store.yaml", "w").write(
    f"project: bench\nregistry: {data}/registry.db\nprovider: local\nonline_store:\n  type: sqlite\n"
    f"  path: {data}/online_store.db\noffline_store:\n  type: file\nentity_key_serialization_version: 3\n")
from feast import FeatureStore, Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float32
import feast
rng = np.random.default_rng(3); N = int(sys.argv[2])
now = datetime.now(timezone.utc).replace(microsecond=0)
df = pd.DataFrame({"eid": np.arange(N, dtype=np.int64), "event_timestamp": pd.to_datetime([now - timedelta(minutes=5)] * N, utc=True)})
for k in range(10): df[f"f{k}"] = rng.standard_normal(N).astype(np.float32)
df.to_parquet("feast_repo/data/feats.parquet", index=False)
ent = Entity(name="e", join_keys=["eid"], value_type=ValueType.INT64)
src = FileSource(path=f"{data}/feats.parquet", timestamp_field="event_timestamp")
fv = FeatureView(name="fv", entities=[ent], ttl=timedelta(days=1), schema=[Field(name=f"f{k}", dtype=Float32) for k in range(10)], source=src, online=True)
store = FeatureStore(repo_path="feast_repo"); store.apply([ent, fv])
store.materialize(start_date=now - timedelta(hours=1), end_date=now + timedelta(minutes=1))
feats = [f"fv:f{k}" for k in range(10)]
random.seed(0)
for _ in range(100): store.get_online_features(features=feats, entity_rows=[{"eid": random.randrange(N)}]).to_dict()
reps = []
for rep in range(3):
    lat = []
    for _ in range(1000):
        e = random.randrange(N); t = time.perf_counter()
        store.get_online_features(features=feats, entity_rows=[{"eid": e}]).to_dict()
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort(); reps.append((lat[499], lat[989]))
print(json.dumps({"version": feast.__version__, "p50_ms": statistics.median(r[0] for r in reps),
                  "p99_ms": statistics.median(r[1] for r in reps)}))
"""


def percentiles(lat_ms: list[float]) -> dict:
    lat = sorted(lat_ms)
    return {"p50_ms": round(lat[len(lat) // 2 - 1], 3), "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 3),
            "max_ms": round(lat[-1], 3), "n": len(lat)}  # fmt: skip


def setup_portal():
    import numpy as np
    import pyarrow as pa
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from apps.accounts import roles
    from apps.accounts.services import token_create
    from apps.core.audit import acting_as
    from apps.features import services

    user = get_user_model().objects.create_user("bench", password="x" * 20)
    user.groups.add(Group.objects.get(name=roles.DATA_STEWARDS))
    with acting_as(user):
        entity = services.entity_create(actor=user, name="e", join_keys=[{"name": "eid", "dtype": "int64"}])
        view = services.feature_view_create(actor=user, name="fv", entity=entity, ttl_seconds=86400,
                                            features=[{"name": f, "dtype": "float64"} for f in FEATS])  # fmt: skip
        rng = np.random.default_rng(3)
        now = timezone.now().replace(microsecond=0)
        cols = {"eid": np.arange(N_ENTITIES, dtype=np.int64),
                "event_timestamp": pa.array([now - timedelta(minutes=5)] * N_ENTITIES)}  # fmt: skip
        for f in FEATS:
            cols[f] = rng.standard_normal(N_ENTITIES).astype(np.float32).astype(np.float64)
        services.feature_view_ingest(view=view, actor=user, data=pa.table(cols))
        job = services.materialize_request(view=view, actor=user, start=now - timedelta(hours=1), end=now)
        job = services.materialize_run(job_id=job.pk)
        assert job.keys_written == N_ENTITIES, job.error
    _, key = token_create(user=user, name="bench", scopes=["features"], expires_days=1)
    return user, key


def in_process(user) -> dict:
    from apps.core.heap import settle
    from apps.features import services

    feats = [f"fv:{f}" for f in FEATS]
    random.seed(0)
    settle(import_urls=False)  # as in every portal process (web: portal/asgi.py, workers: on fork)
    for _ in range(200):
        services.online_read(actor=user, features=feats, entities={"eid": [random.randrange(N_ENTITIES)]})
    reps = []
    for _ in range(3):
        lat = []
        for _ in range(1000):
            e = random.randrange(N_ENTITIES)
            t = time.perf_counter()
            body = services.online_read(actor=user, features=feats, entities={"eid": [e]})
            lat.append((time.perf_counter() - t) * 1e3)
        assert body["results"]["fv:f0"]["statuses"] == ["present"]
        reps.append(percentiles(lat))
    return {
        "p50_ms": statistics.median(r["p50_ms"] for r in reps),
        "p99_ms": statistics.median(r["p99_ms"] for r in reps),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_bytes(key: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (f"POST /api/v1/features/online HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")  # fmt: skip
    return head.encode() + payload


async def _roundtrip(reader, writer, data: bytes) -> int:
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return status


def open_loop(port: int, bodies: list[bytes], rate: float, seconds: float) -> dict:
    """Requests sent on a fixed schedule (rate/s) over one keep-alive connection; latency counted
    from each request's scheduled time, so a slow answer also delays (and penalises) the next ones.

    A blocking socket and a sleep-then-spin wait keep the client on schedule to within ~0.05 ms;
    asyncio's timers round sleeps to about a millisecond, which would be measured as latency.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stream = sock.makefile("rb")
    total = int(rate * seconds)
    lat, errors, late = [], 0, 0
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            time.sleep(delay - 0.0004)
        while time.perf_counter() < due:
            pass
        late += time.perf_counter() - due > 0.0005
        sock.sendall(bodies[i % len(bodies)])
        if _read_response(stream) != 200:
            errors += 1
        lat.append((time.perf_counter() - due) * 1e3)
    elapsed = time.perf_counter() - start
    sock.close()
    return {**percentiles(lat), "target_rps": rate, "achieved_rps": round(total / elapsed, 1), "errors": errors,
            "sent_late_over_0.5ms": late}  # fmt: skip


def _read_response(stream) -> int:
    status = int(stream.readline().split(b" ", 2)[1])
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length"):
            length = int(line.split(b":")[1])
    stream.read(length)
    return status


async def sequential(port: int, bodies: list[bytes], n: int) -> dict:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lat = []
    for i in range(n + 50):
        t = time.perf_counter()
        assert await _roundtrip(reader, writer, bodies[i % len(bodies)]) == 200
        if i >= 50:
            lat.append((time.perf_counter() - t) * 1e3)
    writer.close()
    return percentiles(lat)


def over_http(env: dict, key: str, rate: float, seconds: float, pin: bool) -> dict:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "bench.features_asgi:app", "--port", str(port), "--http", "httptools",
           "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]  # fmt: skip
    if pin and (os.cpu_count() or 1) > 1:  # server on CPU0 as in the anchors (quiet machines only)
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.2)
        rng = random.Random(1)
        one = [request_bytes(key, {"features": [f"fv:{f}" for f in FEATS], "entities": {"eid": [rng.randrange(N_ENTITIES)]}})
               for _ in range(1000)]  # fmt: skip
        hundred = [request_bytes(key, {"features": [f"fv:{f}" for f in FEATS],
                                       "entities": {"eid": rng.sample(range(N_ENTITIES), 100)}}) for _ in range(100)]  # fmt: skip
        asyncio.run(sequential(port, one, 500))  # warm-up: caches, connections
        return {
            "one_entity_open_loop": open_loop(port, one, rate, seconds),
            "one_entity_sequential": asyncio.run(sequential(port, one, 2000)),
            "hundred_entities_sequential": asyncio.run(sequential(port, hundred, 500)),
        }
    finally:
        proc.terminate()
        proc.wait(20)


def feast(n: int) -> dict:
    python = ensure_venv("feast", ["feast", "pandas<3"])
    with tempfile.TemporaryDirectory(prefix="feast-bench-") as tmp:
        out = subprocess.run([str(python), "-c", FEAST, tmp, str(n)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--pin", action="store_true", help="pin the server to CPU0 (like the anchors)")
    args = parser.parse_args()
    with portal_env() as env:
        user, key = setup_portal()
        ours = in_process(user)
        theirs = None if args.skip_feast else feast(N_ENTITIES)
        http = over_http(env, key, args.rate, args.seconds, args.pin)
    report = {
        "benchmark": "online feature reads (1 entity x 10 float features, 10,000 entities)",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "in_process_portal": ours,
        "in_process_feast_sqlite": theirs,
        "p99_ratio_feast_over_portal": round(theirs["p99_ms"] / ours["p99_ms"], 2) if theirs else None,
        "http_fast_path": http,
        "goals": {"in_process_p99": "<= Feast p99", "http_p99_at_500rps_ms": 2.0, "hundred_entities_ms": 10.0},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
