"""Routing: a split by weight within statistical tolerance, sticky keys, alias routes following moves."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from apps.catalog import services as catalog
from apps.serving.inference import cache, logbook, runtime, shadow, traffic
from apps.serving.models import Route
from tests.serving.conftest import make_endpoint, rows, version_of
from tests.serving.test_predict_api import client_for

URL = "/api/v1/endpoints/{}/predict"


@pytest.fixture(autouse=True)
def _quiet_background():
    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    logbook.discard()
    yield
    logbook.discard()
    shadow.drain()
    cache.STATE.reset()


@pytest.fixture
def ab(owner, scorer):
    return make_endpoint(
        owner,
        "ab",
        [
            {"name": "a", "model": scorer, "version": version_of(scorer, 1), "weight": 70},
            {"name": "b", "model": scorer, "version": version_of(scorer, 2), "weight": 30},
        ],
    )


def within_four_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


@pytest.mark.django_db
def test_keys_split_by_weight_within_tolerance(ab):
    plan = cache.plan_for("ab", True)
    keyed = Counter(traffic.pick(plan, f"customer-{i}").name for i in range(2000))
    assert within_four_sigma(keyed["a"], 2000, 0.7), keyed
    unkeyed = Counter(traffic.pick(plan, None).name for _ in range(2000))
    assert within_four_sigma(unkeyed["a"], 2000, 0.7), unkeyed
    assert set(keyed) == set(unkeyed) == {"a", "b"}


@pytest.mark.django_db
def test_a_skewed_split_is_honoured_too(owner, scorer):
    make_endpoint(
        owner,
        "skew",
        [
            {"name": "a", "model": scorer, "version": version_of(scorer, 1), "weight": 95},
            {"name": "b", "model": scorer, "version": version_of(scorer, 2), "weight": 5},
        ],
    )
    plan = cache.plan_for("skew", True)
    keyed = Counter(traffic.pick(plan, f"k{i}").name for i in range(2000))
    assert within_four_sigma(keyed["b"], 2000, 0.05), keyed


@pytest.mark.django_db
def test_the_same_key_keeps_its_route_over_200_calls(owner, ab):
    client = client_for(owner, endpoints=["ab"])
    seen = {}
    for i in range(200):
        key = f"card-{i % 10}"
        response = client.post(
            URL.format("ab"), data=json.dumps({"inputs": rows(1), "key": key}), content_type="application/json"
        )
        assert response.status_code == 200
        body = response.json()
        assert seen.setdefault(key, (body["route"], body["version"])) == (body["route"], body["version"])
    assert {route for route, _ in seen.values()} == {"a", "b"}  # ten keys do not all land on one route
    assert all(version == {"a": 1, "b": 2}[route] for route, version in seen.values())


@pytest.mark.django_db
def test_moving_weight_moves_only_keys_at_the_boundary(ab):
    before = cache.plan_for("ab", True)
    keys = [f"user-{i}" for i in range(2000)]
    first = {k: traffic.pick(before, k).name for k in keys}
    route_a = Route.objects.get(endpoint=ab, name="a")
    route_a.weight = 60
    route_a.save()
    route_b = Route.objects.get(endpoint=ab, name="b")
    route_b.weight = 40
    route_b.save()
    after = cache.plan_for("ab", True)
    assert after is not before and after.cumulative == (60, 100)
    second = {k: traffic.pick(after, k).name for k in keys}
    assert all(second[k] == "b" for k in keys if first[k] == "b")  # b only grew
    moved = sum(first[k] != second[k] for k in keys)
    assert within_four_sigma(moved, 2000, 0.1)


@pytest.mark.django_db
def test_the_bucket_is_stable_and_spreads(ab):
    assert traffic.bucket(7, "k") == traffic.bucket(7, "k")
    assert traffic.bucket(7, "k") != traffic.bucket(8, "k") or traffic.bucket(7, "j") != traffic.bucket(8, "j")
    buckets = [traffic.bucket(1, f"x{i}") for i in range(2000)]
    assert min(buckets) >= 0 and max(buckets) < traffic.BUCKETS
    assert within_four_sigma(sum(b < 5000 for b in buckets), 2000, 0.5)


@pytest.mark.django_db
def test_an_alias_route_follows_the_alias_and_the_new_version_is_loaded_before_it_serves(owner, endpoint, scorer):
    client = client_for(owner)

    def version() -> int:
        response = client.post(
            URL.format("fraud"), data=json.dumps({"inputs": rows(1)}), content_type="application/json"
        )
        assert response.status_code == 200
        return response.json()["version"]

    assert version() == 1
    v2 = version_of(scorer, 2)
    runtime.SESSIONS.clear()
    catalog.alias_move(model=scorer, alias="staging", version=v2, actor=owner)
    plan = cache.plan_for("fraud", True)  # rebuilt after the signal: v2 loaded and warmed first
    assert plan.live[0].version_id == v2.pk
    assert runtime.cached_session(v2.pk) is not None
    assert version() == 2


@pytest.mark.django_db
def test_shadow_routes_and_zero_weight_routes_get_no_live_traffic(owner, scorer):
    make_endpoint(
        owner,
        "mixed",
        [
            {"name": "main", "model": scorer, "version": version_of(scorer, 1), "weight": 100},
            {"name": "idle", "model": scorer, "version": version_of(scorer, 2), "weight": 0},
            {"name": "shadow", "model": scorer, "version": version_of(scorer, 2), "weight": 100, "mode": "shadow"},
        ],
    )
    plan = cache.plan_for("mixed", True)
    assert [r.name for r in plan.live] == ["main"] and [r.name for r in plan.shadows] == ["shadow"]
    assert {traffic.pick(plan, f"k{i}").name for i in range(500)} == {"main"}
