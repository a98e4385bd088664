"""Writes of outcome feedback: one outcome per prediction id, recorded in bulk.

A prediction id carries its endpoint, route and version under an HMAC (apps/serving/ids.py), so
feedback needs no log row: every answered prediction can be scored. The same outcome again is a
no-op, a different one a Conflict; concurrent calls for one id settle on the unique index
(insert-or-ignore, then the stored outcomes are compared inside the same transaction).
"""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.catalog.models import ModelVersion
from apps.core.audit import audit_event
from apps.core.errors import Conflict, Forbidden, TooLarge
from apps.core.permissions import require, token_allows, token_allows_endpoint
from apps.serving.ids import PredictionRef, parse_prediction_id
from apps.serving.models import Endpoint, Feedback, Route

MAX_ITEMS = 1000
ITEM_FIELDS = frozenset({"prediction_id", "outcome"})


def _label(position: int | None) -> str:
    return "" if position is None else f"Item {position + 1} (index {position}): "


def _outcome(value, position: int | None) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if math.isfinite(number) and abs(number) <= 1e15:
            return number
    raise ValidationError({"outcome": [f"{_label(position)}give a finite number or true/false (true counts as 1)."]})


def _clean_item(raw, position: int | None, endpoint: Endpoint) -> tuple[str, PredictionRef, float]:
    if not isinstance(raw, dict):
        raise ValidationError({"detail": [f"{_label(position)}give an object with prediction_id and outcome."]})
    unknown = sorted(str(k) for k in raw if k not in ITEM_FIELDS)
    if unknown:
        raise ValidationError({name: [f"{_label(position)}Unknown field."] for name in unknown})
    missing = sorted(ITEM_FIELDS - set(raw))
    if missing:
        raise ValidationError({name: [f"{_label(position)}This field is required."] for name in missing})
    ref = parse_prediction_id(raw["prediction_id"])
    if ref is None or ref.endpoint_id != endpoint.pk:
        raise ValidationError(
            {
                "prediction_id": [
                    f"{_label(position)}not a prediction id that endpoint {endpoint.name} issued; "
                    "send the prediction_id its predict answer carried."
                ]
            }
        )
    return raw["prediction_id"], ref, _outcome(raw["outcome"], position)


def clean_items(body, endpoint: Endpoint) -> dict[str, tuple[PredictionRef, float]]:
    """One object or a list of them -> {prediction id: (ref, outcome)}; the same id twice in one
    call must carry the same outcome (Conflict otherwise)."""
    single = isinstance(body, dict)
    items = [body] if single else body
    if not isinstance(items, list) or not items:
        raise ValidationError({"detail": ['Send {"prediction_id", "outcome"} or a non-empty list of them.']})
    if len(items) > MAX_ITEMS:
        raise TooLarge(f"At most {MAX_ITEMS:,} outcomes per call; this one has {len(items):,}. Send them in parts.")
    cleaned: dict[str, tuple[PredictionRef, float]] = {}
    for position, raw in enumerate(items):
        prediction_id, ref, outcome = _clean_item(raw, None if single else position, endpoint)
        if prediction_id in cleaned and cleaned[prediction_id][1] != outcome:
            raise Conflict(f"{_label(position)}prediction {prediction_id} appears twice with different outcomes.")
        cleaned[prediction_id] = (ref, outcome)
    return cleaned


def _check_caller(actor, token, endpoint: Endpoint) -> None:
    require(actor, "view", endpoint)
    if not (token_allows(token, "write") or token_allows_endpoint(token, endpoint.name)):
        raise Forbidden(
            f"This token may not send feedback to {endpoint.name}: it needs the 'predict' scope naming "
            "the endpoint, or 'write'."
        )


def _rows(endpoint: Endpoint, cleaned: dict, actor) -> list[Feedback]:
    route_ids = {ref.route_id for ref, _ in cleaned.values()}
    names = dict(Route.objects.filter(endpoint=endpoint, pk__in=route_ids).values_list("pk", "name"))
    version_ids = {ref.version_id for ref, _ in cleaned.values()}
    existing_versions = set(ModelVersion.objects.filter(pk__in=version_ids).values_list("pk", flat=True))
    recorder = actor if getattr(actor, "pk", None) else None
    return [
        Feedback(
            endpoint=endpoint,
            prediction_id=prediction_id,
            route=names.get(ref.route_id, f"#{ref.route_id}"),
            version_id=ref.version_id if ref.version_id in existing_versions else None,
            predicted_at=ref.at,
            outcome=outcome,
            recorded_by=recorder,
        )
        for prediction_id, (ref, outcome) in cleaned.items()
    ]


@transaction.atomic
def feedback_record(*, actor, endpoint: Endpoint, body, token=None) -> dict:
    """Record outcomes for predictions of `endpoint`. Callers: a user who may view the endpoint,
    with a session, a token whose `predict` scope names the endpoint, or a `write` token (else
    Forbidden). Raises ValidationError for malformed items or ids this endpoint did not issue
    (naming the item by position), TooLarge past MAX_ITEMS, Conflict for a different outcome than
    the one recorded. Returns {"received", "recorded", "unchanged"}."""
    _check_caller(actor, token, endpoint)
    cleaned = clean_items(body, endpoint)
    before = set(Feedback.objects.filter(prediction_id__in=list(cleaned)).values_list("prediction_id", flat=True))
    Feedback.objects.bulk_create(_rows(endpoint, cleaned, actor), ignore_conflicts=True)
    stored = dict(Feedback.objects.filter(prediction_id__in=list(cleaned)).values_list("prediction_id", "outcome"))
    for prediction_id, (_, outcome) in cleaned.items():
        if stored.get(prediction_id) != outcome:
            raise Conflict(
                f"Prediction {prediction_id} already has outcome {stored.get(prediction_id):g}; "
                f"an outcome is recorded once and not changed (this call sent {outcome:g})."
            )
    result = {"received": len(cleaned), "recorded": len(cleaned) - len(before), "unchanged": len(before)}
    audit_event(actor=actor, event="endpoint.feedback", obj=endpoint, data=result)
    return result
