"""The per-user API rate, one implementation for Django (DRF's throttle slot) and the lean ASGI path.

The rate is REST_FRAMEWORK's DEFAULT_THROTTLE_RATES["user"] (N requests per trailing second,
minute, hour or day), shared by every process through Redis: a sliding-window estimate over two
fixed-window counters (RATE_LUA). A process leases a small block of requests at a time (1% of the
limit, at least 1) in one round trip and spends it locally, so most requests cost no round trip
at all; the lean path tops its lease up after the response has gone out. Leased requests count
against the user at once, so processes together never exceed the limit (a user at the very edge
may be refused up to about 1.5 blocks per process early). Throttled answers are DRF's: 429,
`Retry-After`, "Request was throttled. Expected available in N seconds."
"""

from __future__ import annotations

import math
import threading
import time

from django.conf import settings

from apps.core.redis_pool import redis_client

# Not under the online store's prefix: the feature near cache's CLIENT TRACKING broadcasts every write there.
RATE_PREFIX = "portal:fsrl:"
RATE_LEASE_DIVISOR = 100
THROTTLE_CLASS = "apps.core.api.throttling.UserRateThrottle"
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LEASES = 100_000

# KEYS = [current window counter, previous window counter]; ARGV = [limit, lease, weight of the
# previous window in 1/1000, counter ttl ms]. Grants min(lease, free) requests and counts them, or
# 0 when the estimate cur + prev * weight is at the limit. Returns {granted, cur, prev}.
RATE_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local free = tonumber(ARGV[1]) - cur - math.ceil(prev * tonumber(ARGV[3]) / 1000)
if free <= 0 then return {0, cur, prev} end
local grant = math.min(tonumber(ARGV[2]), free)
redis.call('INCRBY', KEYS[1], grant)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {grant, cur, prev}
"""

_rates: dict = {}
_leases: dict[int, list] = {}  # user id -> [rate text, window, requests left here, lease size, top-up pending]
_lock = threading.Lock()  # web threads and the event loop share the leases
_sync_script = {}


class Throttled(Exception):
    """Over the rate: `wait` whole seconds until one more request fits."""

    def __init__(self, wait: int):
        super().__init__(throttled_detail(wait))
        self.wait = wait


def rate() -> tuple[str, int, int] | None:
    """(rate text, limit, period seconds) as configured, or None when the user rate is off."""
    conf = settings.REST_FRAMEWORK
    raw = (conf.get("DEFAULT_THROTTLE_RATES") or {}).get("user")
    if not raw or THROTTLE_CLASS not in (conf.get("DEFAULT_THROTTLE_CLASSES") or ()):
        return None
    hit = _rates.get(raw)
    if hit is None:
        num, period = raw.split("/")
        hit = _rates[raw] = (raw, int(num), PERIODS[period[0]])
    return hit


def wait_seconds(limit: int, period: int, frac: float, cur: int, prev: int) -> int:
    """Whole seconds until the sliding estimate leaves room for one more request."""
    if cur < limit and prev:  # the previous window's share fades within this window
        wait = (1 - (limit - cur - 1) / prev - frac) * period
    else:  # this window is full: wait for the next one, where this window's count fades
        wait = (1 - frac) * period + (max(0.0, 1 - (limit - 1) / cur) * period if cur else 0)
    return max(1, math.ceil(wait))


def throttled_detail(wait: int) -> str:
    """The words DRF's throttle answers with, so both paths read the same."""
    return f"Request was throttled. Expected available in {wait} second{'s' if wait != 1 else ''}."


def reset_leases() -> None:
    """Forget this process's leased requests (tests)."""
    with _lock:
        _leases.clear()


def claim_args(user_id: int, rate_: tuple) -> tuple[list[str], list, int, float]:
    """KEYS and ARGV of RATE_LUA for one lease now, with the window and the fraction of it gone."""
    raw, limit, period = rate_
    now = time.time()
    window = int(now // period)
    frac = now / period - window
    key = f"{RATE_PREFIX}u{user_id}:{period}:"
    keys = [f"{key}{window}", f"{key}{window - 1}"]
    args = [limit, lease_size(limit), math.ceil((1 - frac) * 1000), period * 2000]
    return keys, args, window, frac


def lease_size(limit: int) -> int:
    return max(1, limit // RATE_LEASE_DIVISOR)


def spend(user_id: int, rate_: tuple) -> bool | None:
    """Spend one leased request: True (spent, time to top up), False (spent), None (no lease left)."""
    raw, _, period = rate_
    window = int(time.time() // period)
    with _lock:
        lease = _leases.get(user_id)
        if lease is None or lease[2] <= 0 or lease[1] != window or lease[0] != raw:
            return None
        lease[2] -= 1
        if lease[2] < lease[3] // 2 and not lease[4]:
            lease[4] = True
            return True
        return False


def keep(user_id: int, raw: str, window: int, granted: int, size: int) -> None:
    """Add `granted` requests to the user's lease for `window`."""
    with _lock:
        lease = _leases.get(user_id)
        if lease is not None and lease[0] == raw and lease[1] == window:
            lease[2] += granted
            lease[4] = False  # also heals a top-up that an error reply skipped
            return
        if len(_leases) > MAX_LEASES:
            _leases.clear()
        _leases[user_id] = [raw, window, granted, size, False]


def top_up_done(user_id: int) -> None:
    with _lock:
        lease = _leases.get(user_id)
        if lease is not None:
            lease[4] = False


def settle(user_id: int, rate_: tuple, reply: tuple, window: int, frac: float) -> None:
    """Keep a fresh lease (one request of it spent now) or raise Throttled."""
    raw, limit, period = rate_
    granted, cur, prev = (int(x) for x in reply)
    if granted <= 0:
        raise Throttled(wait_seconds(limit, period, frac, cur, prev))
    keep(user_id, raw, window, granted - 1, lease_size(limit))


def check(user_id: int) -> None:
    """Django's side: spend one request of the user's rate or raise Throttled (one pooled round
    trip per lease, none in between)."""
    rate_ = rate()
    if rate_ is None:
        return
    spent = spend(user_id, rate_)
    if spent is not None:
        if spent:  # half the lease is gone: take the next block now, while there is room
            try:
                keys, args, window, _ = claim_args(user_id, rate_)
                granted = int(_script()(keys=keys, args=args)[0])
                if granted > 0:
                    keep(user_id, rate_[0], window, granted, lease_size(rate_[1]))
            finally:
                top_up_done(user_id)
        return
    keys, args, window, frac = claim_args(user_id, rate_)
    settle(user_id, rate_, _script()(keys=keys, args=args), window, frac)


def _script():
    client = redis_client()
    script = _sync_script.get(id(client))
    if script is None:
        script = _sync_script[id(client)] = client.register_script(RATE_LUA)
    return script
