"""Catalog list benchmark: 10,000 models, a user who may see 5,000 of them via object permissions.

Run from the repo root (SQLite by default; PostgreSQL with DATABASE_URL, the goal's database):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_catalog_bench python -m bench.catalog_list

The database is created if missing and keeps its data between runs (setup takes a while once).
Visibility comes from guardian's direct foreign-key tables: 3,000 models shared with the user,
2,000 with a team the user is in, 5,000 invisible. Server time is measured in-process through the
full Django stack (middleware, token auth, DRF, permission filter, serializer, template), which is
what the server spends per request without the network (an in-process figure, not an HTTP load
test: HTTP throughput of the list is bench/everyday.py's, with wrk). Each case is measured in
--rounds rounds of 60 calls after 10 warm-up calls; the report gives the median of the rounds'
p50/p95 with the spread, the date and the load average. Prints one JSON document.

    python -m bench.catalog_list [--rounds 3]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

N_MODELS = 10_000
N_USER = 3_000
N_TEAM = 2_000
REPEATS = 60
WARMUP = 10


def _ensure_postgres_database(url: str) -> None:
    import psycopg
    from dj_database_url import parse

    cfg = parse(url)
    admin = psycopg.connect(host=cfg["HOST"], port=cfg["PORT"] or 5432, user=cfg["USER"], dbname="postgres",
                            password=cfg.get("PASSWORD") or None, autocommit=True)  # fmt: skip
    with admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [cfg["NAME"]]).fetchone():
            admin.execute(f'CREATE DATABASE "{cfg["NAME"]}"')


def _setup() -> tuple:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.db import transaction

    from apps.accounts.models import Team
    from apps.catalog.models import (
        RegisteredModel,
        RegisteredModelGroupObjectPermission,
        RegisteredModelUserObjectPermission,
    )
    from apps.catalog.services import model_create  # noqa: F401  (the app is importable)

    User = get_user_model()
    reader, _ = User.objects.get_or_create(username="bench-reader", defaults={"email": "r@example.com"})
    owner, _ = User.objects.get_or_create(username="bench-owner", defaults={"email": "o@example.com"})
    group, _ = Group.objects.get_or_create(name="team:bench")
    Team.objects.get_or_create(slug="bench", defaults={"name": "Bench", "group": group})
    reader.groups.add(group, *Group.objects.filter(name="ml-engineers"))
    view = Permission.objects.get(content_type__app_label="catalog", codename="view_registeredmodel")
    existing = RegisteredModel.objects.filter(name__startswith="bench-").count()
    if existing < N_MODELS:
        with transaction.atomic():
            RegisteredModel.objects.filter(name__startswith="bench-").delete()
            tags = [["fraud", "tabular"], ["vision"], ["nlp", "text"], ["tabular"]]
            models = RegisteredModel.objects.bulk_create(
                [
                    RegisteredModel(
                        name=f"bench-{i:05d}",
                        description=f"benchmark model {i}",
                        tags=tags[i % 4],
                        owner=owner,
                        latest_version=i % 7,
                        framework=["pytorch", "sklearn"][i % 2],
                    )  # fmt: skip
                    for i in range(N_MODELS)
                ],
                batch_size=2000,
            )
            if not models[0].pk:
                models = list(RegisteredModel.objects.filter(name__startswith="bench-").order_by("name"))
            # Interleave so that visible models are spread over the whole name order.
            RegisteredModelUserObjectPermission.objects.bulk_create(
                [RegisteredModelUserObjectPermission(user=reader, permission=view, content_object=m)
                 for m in models[0 : 2 * N_USER : 2]], batch_size=2000)  # fmt: skip
            RegisteredModelGroupObjectPermission.objects.bulk_create(
                [RegisteredModelGroupObjectPermission(group=group, permission=view, content_object=m)
                 for m in models[2 * N_USER + 1 :: 2][:N_TEAM]], batch_size=2000)  # fmt: skip
    from django.db import connection

    if connection.vendor == "postgresql":  # what autovacuum does soon after a bulk load
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return reader


def _measure(fn, repeats: int = REPEATS, rounds: int = 3) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        fn()
    each, queries = [], 0
    for _ in range(rounds):
        times = []
        for _ in range(repeats):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
            queries = max(queries, len(captured.captured_queries))
        times.sort()
        each.append({"p50_ms": round(statistics.median(times) * 1000, 2),
                     "p95_ms": round(times[int(len(times) * 0.95) - 1] * 1000, 2)})  # fmt: skip
    out = {
        key: {
            "median": statistics.median(r[key] for r in each),
            "min": min(r[key] for r in each),
            "max": max(r[key] for r in each),
        }  # fmt: skip
        for key in ("p50_ms", "p95_ms")
    }
    return {**out, "queries": queries, "rounds": each}


def run(rounds: int = 3) -> dict:
    from bench.common import portal_env

    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        _ensure_postgres_database(os.environ["DATABASE_URL"])
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = [round(x, 2) for x in os.getloadavg()]
    with portal_env():
        from django.conf import settings
        from django.db import connection
        from django.test import Client
        from django.test.utils import setup_test_environment

        setup_test_environment()  # lets the test client run without ALLOWED_HOSTS surprises
        settings.DEBUG = False
        reader = _setup()
        from apps.accounts.services import token_create
        from apps.catalog.selectors import models_visible

        visible = models_visible(reader, {}).count()
        _, key = token_create(user=reader, name="bench", scopes=["read"], expires_days=1)
        api = Client(HTTP_AUTHORIZATION=f"Token {key}")
        browser = Client()
        browser.force_login(reader)

        def get(client, url):
            def call():
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)  # noqa: S101  benchmark sanity check; benches never run under -O
                return response

            return call

        def measure(client, url):
            return _measure(get(client, url), rounds=rounds)

        results = {
            "date": started,
            "database": connection.vendor,
            "models": N_MODELS,
            "visible_to_user": visible,
            "api_first_page": measure(api, "/api/v1/models/"),
            "api_first_page_filtered": measure(api, "/api/v1/models/?tag=tabular&sort=-updated"),
            "browser_first_page": measure(browser, "/models/"),
            "browser_search": measure(browser, "/models/?q=model 12&framework=pytorch"),
        }
        results["goal"] = "first page p95 < 100 ms with <= 8 queries on PostgreSQL"
        first = results["api_first_page"]
        shape_ok = first["queries"] <= 8 and visible == N_USER + N_TEAM
        met = sum(r["p95_ms"] < 100 for r in first["rounds"]) if shape_ok else 0
        results["goal_met_in_rounds"] = f"{met} of {rounds}"
        results["load_average_1_5_15"] = [load_before, [round(x, 2) for x in os.getloadavg()]]
        return results


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    print(json.dumps(run(parser.parse_args().rounds), indent=2))
