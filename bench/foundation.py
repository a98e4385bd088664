"""Foundation overhead: what tamper evidence costs per write.

Appending hash-chained audit entries (lock, previous hash, insert, hash, update) against plain
inserts into the same table, in one process, alternating blocks of both so that drift hits both;
--rounds rounds, the median cost ratio with the spread. (The HTTP side of the foundation, the full
Django stack against the bare-ASGI floor, is bench/everyday.py: one HTTP method, wrk pinned.)

    python -m bench.foundation [--entries 2000] [--rounds 3]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench python -m bench.foundation
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from bench.common import portal_env


def _audit(n: int = 2000, plain_first: bool = False) -> dict:
    from django.contrib.auth import get_user_model

    from apps.core.audit import audit_event
    from apps.core.models import AuditEntry

    user = get_user_model().objects.get(username="bench")
    if not AuditEntry.objects.exists():
        audit_event(actor=user, event="bench.first", data={})

    def chained() -> float:
        started = time.perf_counter()
        for i in range(n):
            audit_event(actor=user, event="bench.append", data={"i": i})
        return time.perf_counter() - started

    def plain() -> float:
        # Same rows without the chain: single-row inserts that skip save() (no chain).
        fields = dict(content_type_id=AuditEntry.objects.first().content_type_id, object_pk="1", object_repr="x",
                      action=3, actor=user, additional_data={"event": "bench.plain"})  # fmt: skip
        started = time.perf_counter()
        for _ in range(n):
            AuditEntry.objects.bulk_create([AuditEntry(**fields)])
        return time.perf_counter() - started

    if plain_first:
        plain_s, chained_s = plain(), chained()
    else:
        chained_s, plain_s = chained(), plain()
    return {
        "entries": n,
        "chained_per_s": round(n / chained_s),
        "plain_insert_per_s": round(n / plain_s),
        "chain_cost_ratio": round(chained_s / plain_s, 2),
    }


def run(entries: int = 2000, rounds: int = 3) -> dict:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = [round(x, 2) for x in os.getloadavg()]
    with portal_env():
        import django.db

        from tests.conftest import make_user

        make_user("bench", "ml-engineers")
        each = [_audit(entries, plain_first=i % 2 == 1) for i in range(rounds)]
        database = django.db.connection.vendor
    ratios = [r["chain_cost_ratio"] for r in each]
    return {
        "date": started,
        "database": database,
        "audit": {
            "chain_cost_ratio": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
            "chained_per_s_median": statistics.median(r["chained_per_s"] for r in each),
            "plain_insert_per_s_median": statistics.median(r["plain_insert_per_s"] for r in each),
            "rounds": each,
        },
        "load_average_1_5_15": [load_before, [round(x, 2) for x in os.getloadavg()]],
        "http": "see bench/everyday.py (wrk against the floor and the portal, pinned)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(args.entries, args.rounds), indent=2))


if __name__ == "__main__":
    main()
