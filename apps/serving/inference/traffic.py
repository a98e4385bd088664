"""Which route answers: a stable hash of the caller key against cumulative weights; shadow copies.

A key is hashed (BLAKE2b of the endpoint id and the key) into a bucket in [0, 10000); the live
routes with weight, in (position, name) order, own consecutive ranges of buckets in proportion to
their weights. So the same key keeps its route for as long as the weights hold, and moving weight
from one route to the next moves only the keys at the boundary. Without a key the route is drawn
at random by weight. Each shadow route gets a copy of a live request with probability weight/100.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from hashlib import blake2b

from apps.serving.inference.cache import EndpointPlan, RoutePlan

BUCKETS = 10_000
_random = random.Random()  # noqa: S311  traffic split and shadow sampling, not a secret


def bucket(endpoint_id: int, key: str) -> int:
    """The key's bucket in [0, BUCKETS) on this endpoint (stable across processes and restarts)."""
    digest = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8, person=b"portal.route", salt=b"")
    digest.update(endpoint_id.to_bytes(8, "big"))
    return int.from_bytes(digest.digest(), "big") % BUCKETS


def pick(plan: EndpointPlan, key: str | None) -> RoutePlan | None:
    """The live route for this request, or None when no live route has weight."""
    total = plan.total_weight
    if total <= 0:
        return None
    if len(plan.live) == 1:
        return plan.live[0]
    point = _random.random() * total if key is None else bucket(plan.id, key) * total / BUCKETS
    return plan.live[min(bisect_right(plan.cumulative, point), len(plan.live) - 1)]


def shadows_for(plan: EndpointPlan) -> list[RoutePlan]:
    """The shadow routes that get a copy of this request."""
    if not plan.shadows:
        return []
    return [route for route in plan.shadows if route.weight >= 100 or _random.random() * 100 < route.weight]
