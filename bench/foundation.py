"""Foundation overheads, side by side in one run.

- HTTP: a token-authenticated `GET /api/v1/me` through the full stack (uvicorn + Django + DRF +
  token check + role lookup) against the bare-ASGI floor on the same uvicorn.
- Audit: appending hash-chained audit entries against plain inserts into a same-shaped table,
  i.e. what tamper evidence costs per write.
"""

from __future__ import annotations

import sys
import time

from bench.common import load, portal_env, server

UVICORN = [
    "-m",
    "uvicorn",
    "--host",
    "127.0.0.1",
    "--no-access-log",
    "--log-level",
    "warning",
    "--http",
    "httptools",
    "--loop",
    "uvloop",
]


def _http(env: dict) -> dict:
    from apps.accounts.services import token_create
    from apps.core.embedded_redis import free_port
    from tests.conftest import make_user

    user = make_user("bench", "ml-engineers")
    _, key = token_create(user=user, name="bench", scopes=["read"], expires_days=1)
    results = {}
    port = free_port()
    with server([sys.executable, *UVICORN, "--port", str(port), "bench.floor_app:app"], env, port, path="/"):
        results["floor"] = load(port, "GET", "/", {})
    port = free_port()
    with server([sys.executable, *UVICORN, "--port", str(port), "portal.asgi:application"], env, port):
        results["portal_api_me"] = load(port, "GET", "/api/v1/me", {"Authorization": f"Token {key}"})
    results["portal_over_floor_latency_ratio"] = round(
        results["portal_api_me"]["p50_ms"] / results["floor"]["p50_ms"], 2
    )
    return results


def _audit(n: int = 2000) -> dict:
    from django.contrib.auth import get_user_model

    from apps.core.audit import audit_event
    from apps.core.models import AuditEntry

    user = get_user_model().objects.get(username="bench")
    started = time.perf_counter()
    for i in range(n):
        audit_event(actor=user, event="bench.append", data={"i": i})
    chained = time.perf_counter() - started
    # Same rows without the chain: bulk-free single inserts through the base manager.
    fields = dict(
        content_type_id=AuditEntry.objects.first().content_type_id,
        object_pk="1",
        object_repr="x",
        action=3,
        actor=user,
        additional_data={"event": "bench.plain"},
    )
    started = time.perf_counter()
    for _ in range(n):
        AuditEntry.objects.bulk_create([AuditEntry(**fields)])  # bulk_create skips save(): no chain
    plain = time.perf_counter() - started
    return {
        "entries": n,
        "chained_per_s": round(n / chained),
        "plain_insert_per_s": round(n / plain),
        "chain_cost_ratio": round(chained / plain, 2),
    }


def run() -> dict:
    with portal_env() as env:
        return {"http": _http(env), "audit": _audit()}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
