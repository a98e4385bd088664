"""One prediction, as both callers answer it: the Django view (session callers) and the lean ASGI
path (token callers). Status, JSON body and extra headers come back; nothing here knows HTTP.

Order (each refusal does nothing further): the endpoint's plan (missing, archived or invisible:
404), the token naming the endpoint (else 403), the body (413 past SERVING_MAX_BODY_BYTES, 400 for
bad JSON, unknown fields or a bad key), the route (the key's stable bucket), its residency (403 when its version is pinned to a region this
process may not serve; decided once per plan) and its loaded session,
the token's own rate (429), the inputs against the version's signature (400 / 413), the model
(500 when it fails: logged and counted), then the counters and sampled log entry, and shadow
copies. The caller's API rate and the token's scope are checked by the caller before (DRF's
throttle and permission class; the lean path's own check with the same code).

With `allow_load=False` (the lean path on the event loop) anything that needs the database or a
model load raises `cache.Miss` before any side effect, and the caller runs the call again off
the loop with `allow_load=True`.
"""

from __future__ import annotations

import logging
import random
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from rest_framework.exceptions import ParseError

from apps.core import metrics, ratelimit
from apps.core.api.parsers import loads as json_loads
from apps.core.errors import DomainError, ResidencyError, error_body
from apps.core.permissions import token_allows_endpoint
from apps.core.redis_pool import redis_client
from apps.serving.ids import new_prediction_id
from apps.serving.inference import logbook, shadow, traffic
from apps.serving.inference.cache import Miss, check_generation, may_view, plan_for
from apps.serving.inference.inputs import to_feeds
from apps.serving.inference.runtime import ModelLoadError, cached_session, session_for
from apps.serving.services import residency as residency_serving

log = logging.getLogger(__name__)

FIELDS = ("inputs", "key")
MAX_KEY_CHARS = 256
NOT_FOUND = "No endpoint matches the given query."
_random = random.Random()  # noqa: S311  log sampling, not a secret
_token_rates: dict[str, tuple[str, int, int]] = {}
_scripts: dict = {}


class Refusal(Exception):
    def __init__(self, status: int, body: dict, headers=()):
        self.status, self.body, self.headers = status, body, list(headers)


def _token_rate(raw: str) -> tuple[str, int, int] | None:
    hit = _token_rates.get(raw)
    if hit is None:
        try:
            number, period = raw.split("/")
            hit = (raw, int(number), ratelimit.PERIODS[period[0]])
        except (ValueError, KeyError, IndexError):
            log.warning("ignoring a token rate that does not parse: %r", raw)
            return None
        _token_rates[raw] = hit
    return hit


def _rate_script():
    client = redis_client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(ratelimit.RATE_LUA)
    return script


def charge_token(token) -> None:
    """Spend one request of the token's own rate (shared by every process through Redis)."""
    raw = getattr(token, "rate", "") or ""
    rate = _token_rate(raw) if raw else None
    if rate is None:
        return
    who = f"t{token.prefix}"  # apart from the users'; prefixes are random, never reused like ids
    spent = ratelimit.spend(who, rate)
    if spent is not None:
        if spent:
            ratelimit.top_up_done(who)  # small token rates: the next lease is claimed when needed
        return
    keys, args, window, frac = ratelimit.claim_args(who, rate)
    try:
        ratelimit.settle(who, rate, _rate_script()(keys=keys, args=args), window, frac)
    except ratelimit.Throttled as exc:
        raise Refusal(429, {"detail": str(exc)}, [(b"retry-after", str(exc.wait).encode())]) from None


def parse_body(body) -> tuple[object, str | None]:
    """(inputs, key) of the request body (bytes or already parsed), or a 400/413 Refusal."""
    if isinstance(body, bytes | bytearray | memoryview):
        if len(body) > settings.SERVING_MAX_BODY_BYTES:
            raise Refusal(
                413, {"detail": f"The request body is over {settings.SERVING_MAX_BODY_BYTES} bytes; send fewer rows."}
            )
        try:
            body = json_loads(bytes(body))  # the API's JSON rules: depth, lone surrogates, NaN
        except ParseError as exc:
            raise Refusal(400, {"detail": str(exc.detail)}) from None
    if not isinstance(body, dict):
        raise Refusal(400, {"detail": ["Send a JSON object with the fields this endpoint documents."]})
    errors = {name: ["Unknown field."] for name in body if name not in FIELDS}
    if "inputs" not in body:
        errors["inputs"] = ["This field is required."]
    key = body.get("key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS):
        errors["key"] = [f"Send the key as a string of 1 to {MAX_KEY_CHARS} characters."]
    if errors:
        raise Refusal(400, errors)
    return body["inputs"], key


def _session(route, allow_load: bool):
    model = cached_session(route.version_id)
    if model is not None:
        return model
    if not allow_load:
        raise Miss
    return session_for(route.version)


def _refuse_region(plan, route, user, allow_load: bool) -> Refusal:
    """403 for a route whose version this process may not serve (decided when the plan was built),
    audited at most once per endpoint and version per window (apps/serving/services/residency.py)."""
    if not allow_load and residency_serving.serve_audit_due(plan.id, route.version_id):
        raise Miss  # the entry needs the database: off the event loop
    if residency_serving.serve_refusal_counted(plan.id, route.version_id):
        residency_serving.audit_serve_refusal(
            actor=user, endpoint_id=plan.id, endpoint_name=plan.name, version=route.version, why=route.refusal
        )
    return Refusal(*error_body(ResidencyError(route.refusal)))


def _predict(*, user, token, endpoint_name, body, allow_load: bool) -> tuple[int, dict, list]:
    started = time.perf_counter()
    check_generation()
    plan = plan_for(endpoint_name, allow_load) if isinstance(endpoint_name, str) else None
    if plan is None or plan.archived or not may_view(user, plan, allow_load):
        raise Refusal(404, {"detail": NOT_FOUND})
    if not token_allows_endpoint(token, plan.name):
        raise Refusal(
            403,
            {
                "detail": f"This token may not call endpoint {plan.name!r}; create a 'predict' token that names it "
                f"(manage.py token_create <user> --scope predict --endpoint {plan.name})."
            },
        )
    inputs, key = parse_body(body)
    route = traffic.pick(plan, key)
    if route is None:
        raise Refusal(503, {"detail": f"Endpoint {plan.name!r} has no live route with traffic; give one a weight."})
    if route.refusal:  # residency (issue 17): pinned to a region this process may not serve
        raise _refuse_region(plan, route, user, allow_load)
    try:
        model = _session(route, allow_load)
    except ModelLoadError as exc:
        _record_failure(plan, route, user, token, key, inputs, started, str(exc))
        raise Refusal(500, {"detail": "The model of this route could not be loaded; it has been logged."}) from None
    if token is not None:
        charge_token(token)
    try:
        feeds, rows = to_feeds(inputs, model, settings.SERVING_MAX_ROWS)
    except ValidationError as exc:
        raise Refusal(400, exc.message_dict) from None
    except DomainError as exc:
        raise Refusal(*error_body(exc)) from None
    try:
        outputs = model.run(feeds)
    except Exception as exc:  # the model's failure on valid input: a 500, logged and counted
        log.warning("endpoint %s, route %s (%s): %s", plan.name, route.name, model.label, exc)
        _record_failure(plan, route, user, token, key, inputs, started, f"{type(exc).__name__}: {exc}", rows)
        return 500, {"detail": "The model failed on this input; the error has been logged."}, []
    answer = {name: value.tolist() for name, value in outputs.items()}
    prediction_id = new_prediction_id(plan.id, route.id, route.version_id, int(time.time() * 1000))
    sample = plan.log_sample_rate > 0 and _random.random() < plan.log_sample_rate
    caller_id = getattr(user, "pk", None)
    token_prefix = getattr(token, "prefix", "") if token is not None else ""
    _record(plan, route, caller_id, token_prefix, key, inputs, started, rows, sample=sample,
            prediction_id=prediction_id, outputs=answer)  # fmt: skip
    if plan.shadows:
        for copy_to in traffic.shadows_for(plan):
            shadow.submit(
                shadow.ShadowJob(
                    endpoint_id=plan.id,
                    route=copy_to,
                    feeds=feeds,
                    live=outputs,
                    rows=rows,
                    sample=sample,
                    prediction_id=prediction_id,
                    key=key,
                    caller_id=caller_id,
                    token_prefix=token_prefix,
                    inputs=inputs,
                )
            )
    return (
        200,
        {
            "outputs": answer,
            "model": route.model_name,
            "version": route.version_number,
            "route": route.name,
            "prediction_id": prediction_id,
        },
        [],
    )


def _record(plan, route, caller_id, token_prefix, key, inputs, started, rows: int, *, sample: bool,
            prediction_id: str = "", outputs=None, status: int = 200, error: str = "") -> None:  # fmt: skip
    """Count the request in its traffic window and the platform metrics; keep the sampled entry
    (failures: always)."""
    elapsed = time.perf_counter() - started
    metrics.PREDICT.observe((plan.name, route.name, status), elapsed)
    logbook.record(
        endpoint_id=plan.id,
        route=route.name,
        mode="live",
        version_id=route.version_id,
        rows=rows,
        latency_ms=elapsed * 1000,
        status=status,
        error=error,
        entry=logbook.entry_of(
            prediction_id=prediction_id,
            key=key,
            caller_id=caller_id,
            token_prefix=token_prefix,
            rows=rows,
            inputs=inputs,
            outputs=outputs,
        )  # fmt: skip
        if sample
        else None,
    )


def _record_failure(plan, route, user, token, key, inputs, started, error: str, rows: int = 0) -> None:
    token_prefix = getattr(token, "prefix", "") if token is not None else ""
    _record(plan, route, getattr(user, "pk", None), token_prefix, key, inputs, started, rows, sample=True,
            status=500, error=error)  # fmt: skip


def predict_call(
    *, user, token, endpoint_name: str, body, client: str = "", allow_load: bool = True
) -> tuple[int, dict, list]:
    """status, JSON body, extra headers [(b"retry-after", b"3")]; body may be bytes (raw JSON) or a
    parsed dict. `client` (the caller's address) is accepted for the boundary's logs."""
    try:
        return _predict(user=user, token=token, endpoint_name=endpoint_name, body=body, allow_load=allow_load)
    except Refusal as refusal:
        return refusal.status, refusal.body, refusal.headers
