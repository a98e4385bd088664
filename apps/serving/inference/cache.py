"""What the predict path remembers per process: endpoint plans, tokens and view decisions.

- A **plan** is an endpoint as the hot path needs it: id, name, archived, sample rate, its live
  routes (weight > 0, in (position, name) order, each resolved to a version: aliases followed) with
  cumulative weights, and its shadow routes. Building one loads and warms every version's session
  first, so a plan never points at a version this process has not loaded.
- **Tokens** by the SHA-256 of their key, with their expiry; **decisions**: may user U view
  endpoint E.

Everything is dropped in every process when what it depends on changes: `signals.py` clears this
process at once and, after commit, `bump()` moves a Redis counter and publishes on a channel. One
listener thread per process receives the message (no round trip per request); while it is not
subscribed, each request compares the counter instead. Entries also expire after MAX_AGE_S.

Plans are not thrown away on a change, only marked stale: the first request that meets a stale
plan has it rebuilt (off the event loop) while every other request keeps being served by the old
one. That is how an alias move switches versions with no failed request: the new version is loaded
and warmed before the new plan replaces the old. Tokens and decisions are dropped at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.db import connections

from apps.core.invalidation import ChannelListener
from apps.core.redis_pool import redis_client

GEN_KEY = "portal:serving:gen"
CHANNEL = "portal:serving:changed"
MAX_AGE_S = 60.0
MAX_ENTRIES = 50_000
log = logging.getLogger(__name__)


class Miss(Exception):
    """The answer needs the database or a model load: the lean path retries off the event loop."""


@dataclass(frozen=True)
class RoutePlan:
    id: int
    name: str
    mode: str
    weight: int
    position: int
    model_name: str
    version_id: int
    version_number: int
    version: object = field(repr=False, compare=False)  # the ModelVersion, for session loads
    # Why this process may not serve the version (residency, issue 17): "" when it may. Decided
    # here, once per plan; the predict path answers 403 on it without loading the version.
    refusal: str = ""


@dataclass(frozen=True)
class EndpointPlan:
    id: int
    name: str
    archived: bool
    log_sample_rate: float
    live: tuple[RoutePlan, ...]
    cumulative: tuple[int, ...]  # running sum of live weights
    shadows: tuple[RoutePlan, ...]
    obj: object = field(repr=False, compare=False)  # the Endpoint row, for permission decisions

    @property
    def total_weight(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seq = 0  # moves on every invalidation: plans built under another seq are stale
        self.generation: bytes | None = None
        self.plans: dict[str, tuple[EndpointPlan | None, int, float]] = {}  # name -> plan, seq, stamp
        self.rebuilding: set[str] = set()
        self.gates: dict[str, threading.Lock] = {}
        self.tokens: dict[str, tuple[object, float | None, float]] = {}
        self.decisions: dict[tuple[int, int], tuple[bool, float]] = {}

    def invalidate(self, generation: bytes | None = None) -> None:
        with self.lock:
            self.seq += 1
            if generation is not None:
                self.generation = generation
            self.tokens.clear()
            self.decisions.clear()

    def reset(self) -> None:
        """Forget everything (tests)."""
        with self.lock:
            self.seq += 1
            self.plans.clear()
            self.tokens.clear()
            self.decisions.clear()
            self.rebuilding.clear()


STATE = _State()


def clear_local() -> None:
    STATE.invalidate()


def bump() -> None:
    """Drop endpoint, route and token decisions in every process (call it after commit)."""
    STATE.invalidate()
    try:
        pipe = redis_client().pipeline(transaction=False)
        pipe.incr(GEN_KEY)
        pipe.publish(CHANNEL, b"1")
        pipe.execute()
    except Exception:  # other processes' entries still expire within MAX_AGE_S
        log.exception("could not announce a serving change")


# --- the listener ------------------------------------------------------------------------------
# Each message (and each (re)subscription: anything may have changed while nobody listened) drops
# every cached plan, token and decision of this process.
LISTENER = ChannelListener(CHANNEL, lambda: STATE.invalidate(), name="serving-cache")


def check_generation() -> None:
    """Once per request: nothing while the listener is subscribed, else compare the counter."""
    if LISTENER.listening():
        return
    try:
        generation = redis_client().get(GEN_KEY) or b"0"
    except Exception as exc:  # Redis down: trust nothing cached
        log.warning("serving cache bypassed: %s", exc)
        STATE.invalidate()
        return
    if generation != STATE.generation:
        STATE.invalidate(generation)


# --- tokens and decisions ------------------------------------------------------------------------
def token_get(digest: str):
    hit = STATE.tokens.get(digest)
    if hit is None or time.monotonic() - hit[2] >= MAX_AGE_S:
        return None
    return hit


def token_put(digest: str, token, expires: float | None) -> None:
    if len(STATE.tokens) > MAX_ENTRIES:
        STATE.tokens.clear()
    STATE.tokens[digest] = (token, expires, time.monotonic())


def token_drop(digest: str) -> None:
    STATE.tokens.pop(digest, None)


def may_view(user, plan: EndpointPlan, allow_load: bool) -> bool:
    """May `user` view the endpoint (cached per user and endpoint)."""
    key = (user.pk, plan.id)
    hit = STATE.decisions.get(key)
    if hit is not None and time.monotonic() - hit[1] < MAX_AGE_S:
        return hit[0]
    if not allow_load:
        raise Miss
    from apps.core.permissions import can

    seq = STATE.seq
    allowed = can(user, "view", plan.obj)
    if STATE.seq == seq:
        if len(STATE.decisions) > MAX_ENTRIES:
            STATE.decisions.clear()
        STATE.decisions[key] = (allowed, time.monotonic())
    return allowed


# --- plans ---------------------------------------------------------------------------------------
def _build(name: str) -> EndpointPlan | None:
    from apps.catalog.models import Alias
    from apps.serving.inference.runtime import ModelLoadError, session_for
    from apps.serving.models import Endpoint, Route
    from apps.serving.services.residency import audit_serve_refusal, serve_refusal

    endpoint = Endpoint.objects.filter(name=name).first()
    if endpoint is None:
        return None
    routes = list(
        Route.objects.filter(endpoint=endpoint)
        .select_related("model", "version__artifact")
        .order_by("position", "name", "pk")
    )
    aliased = {(r.model_id, r.alias) for r in routes if r.alias}
    targets = {}
    if aliased:
        models = {m for m, _ in aliased}
        for alias in Alias.objects.filter(model_id__in=models).select_related("version__artifact", "version__model"):
            targets[(alias.model_id, alias.name)] = alias.version
    live, cumulative, shadows, total = [], [], [], 0
    for route in routes:
        version = targets.get((route.model_id, route.alias)) if route.alias else route.version
        if version is None:
            log.warning("route %s of endpoint %s follows a missing alias %r", route.name, name, route.alias)
            continue
        if version.model_id == route.model_id:
            version.model = route.model  # names it in messages without another query
        plan = RoutePlan(
            id=route.pk,
            name=route.name,
            mode=route.mode,
            weight=route.weight,
            position=route.position,
            model_name=route.model.name,
            version_id=version.pk,
            version_number=version.version,
            version=version,
            refusal=serve_refusal(version, route.model.name),
        )
        if route.weight <= 0:
            continue
        if route.mode == Route.Mode.SHADOW:
            if plan.refusal:  # never copied to here; audited like a refused live route
                audit_serve_refusal(
                    actor=None, endpoint_id=endpoint.pk, endpoint_name=endpoint.name, version=version, why=plan.refusal
                )
                continue
            shadows.append(plan)
        else:
            total += route.weight
            live.append(plan)
            cumulative.append(total)
        if endpoint.archived_at is None and not plan.refusal:  # a refused version is never loaded here
            try:
                session_for(version)  # loaded and warmed before any request is routed to it
            except ModelLoadError as exc:
                log.error("endpoint %s, route %s: %s", name, route.name, exc)
    return EndpointPlan(
        id=endpoint.pk,
        name=endpoint.name,
        archived=endpoint.archived_at is not None,
        log_sample_rate=float(endpoint.log_sample_rate),
        live=tuple(live),
        cumulative=tuple(cumulative),
        shadows=tuple(shadows),
        obj=endpoint,
    )


def _rebuild(name: str) -> EndpointPlan | None:
    with STATE.lock:
        gate = STATE.gates.setdefault(name, threading.Lock())
    with gate:
        hit = STATE.plans.get(name)
        if hit is not None and hit[1] == STATE.seq and time.monotonic() - hit[2] < MAX_AGE_S:
            return hit[0]
        STATE.rebuilding.add(name)
        try:
            seq = STATE.seq
            plan = _build(name)
            with STATE.lock:
                if len(STATE.plans) > MAX_ENTRIES:
                    STATE.plans.clear()
                STATE.plans[name] = (plan, seq, time.monotonic())
            return plan
        finally:
            STATE.rebuilding.discard(name)


def _rebuild_in_background(name: str) -> None:
    try:
        _rebuild(name)
    except Exception:
        log.exception("could not rebuild the plan of endpoint %s", name)
    finally:
        connections.close_all()  # this thread ends here; its connections must not linger


def plan_for(name: str, allow_load: bool) -> EndpointPlan | None:
    """The endpoint's plan, or None when there is no such endpoint.

    On the event loop (`allow_load` False) a stale plan keeps serving while a background thread
    builds the new one. Off the loop the caller waits for the fresh plan (one build at a time):
    decisions are only ever made on a fresh plan, so a stale one is never used to admit anyone
    the new state would refuse (its decisions were dropped with it)."""
    hit = STATE.plans.get(name)
    if hit is not None:
        plan, seq, stamp = hit
        if seq == STATE.seq and time.monotonic() - stamp < MAX_AGE_S:
            return plan
        if not allow_load and plan is not None and not plan.archived:
            if name not in STATE.rebuilding:
                STATE.rebuilding.add(name)
                threading.Thread(target=_rebuild_in_background, args=(name,), daemon=True).start()
            return plan  # the old plan serves until the new one (versions loaded) is in place
    if not allow_load:
        raise Miss
    return _rebuild(name)
