"""Data-subject request fixtures: one entity with string keys, a feature view with rows for three
people in the offline and online stores, a training set built from it, and an endpoint whose
prediction logs (and feedback) carry the people's keys as caller keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.features import services as features
from apps.features import training_sets
from apps.serving.inference import logbook
from apps.serving.inference.predict import predict_call
from apps.serving.models import Feedback, PredictionLog
from tests.features.conftest import T0, feature_store, iso
from tests.serving.conftest import _serving_quiet, make_endpoint, mlp_onnx, rows, scorer, vault_storage

__all__ = ["_serving_quiet", "feature_store", "mlp_onnx", "scorer", "vault_storage"]

PEOPLE = ("alice-7731", "bob-8812", "carol-9923")
SUBJECT = PEOPLE[1]
FEATURES = [
    {"name": "balance", "dtype": "float64"},
    {"name": "segment", "dtype": "string"},
    {"name": "email", "dtype": "string", "pii": True},
]


def person_rows(people, days=(0, 1)) -> list[dict]:
    return [
        {"person_id": p, "event_timestamp": iso(T0 + timedelta(days=d, hours=i)), "balance": 10.0 * i + d,
         "segment": "gold", "email": f"{p}@example.com"}
        for i, p in enumerate(people) for d in days
    ]  # fmt: skip


@pytest.fixture
def store(owner, admin_user, scorer, django_capture_on_commit_callbacks):
    """Offline: two dated files with every person (2 rows each), online: everyone's latest values,
    a training set of one label row per person, predictions: bob 2 (one with feedback), carol 1."""
    entity = features.entity_create(actor=owner, name="person", join_keys=[{"name": "person_id", "dtype": "string"}])
    view = features.feature_view_create(actor=owner, name="person-stats", entity=entity, features=FEATURES)
    features.feature_view_ingest(view=view, actor=owner, data=person_rows(PEOPLE))
    job = features.feature_view_materialize(
        view=view, actor=owner, start=T0 - timedelta(days=1), end=T0 + timedelta(days=9)
    )
    assert features.materialization_run(job_id=job.pk).state == "succeeded"
    labels = [
        {"person_id": p, "event_timestamp": iso(T0 + timedelta(days=5)), "label": i % 2} for i, p in enumerate(PEOPLE)
    ]
    ts = training_sets.training_set_create(
        actor=owner, name="people", features=["person-stats:balance", "person-stats:email"], entity_rows=labels
    )
    endpoint = make_endpoint(
        owner, "fraud", [{"name": "main", "model": scorer, "alias": "staging"}], log_sample_rate=1.0
    )
    from apps.serving.inference import cache

    cache.STATE.reset()
    for key in (SUBJECT, SUBJECT, PEOPLE[2]):
        status, answer, _ = predict_call(
            user=owner, token=None, endpoint_name="fraud", body={"inputs": rows(1), "key": key}
        )
        assert status == 200, answer
    logbook.flush()
    for key in (SUBJECT, PEOPLE[2]):
        log = PredictionLog.objects.filter(key_hash=_hash(key)).first()
        Feedback.objects.create(endpoint=endpoint, prediction_id=log.prediction_id, route=log.route, version=log.version,
                                predicted_at=log.created_at, outcome=1.0, recorded_by=owner)  # fmt: skip
    view.refresh_from_db()
    return {"view": view, "training_set": ts, "endpoint": endpoint}


def _hash(key: str) -> str:
    from apps.serving.ids import pseudonymise_key

    return pseudonymise_key(key)
