"""Model quality from outcomes: feedback matched to logged predictions gives accuracy and AUC per
route and day next to the version's training metrics; unmatched outcomes still count."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from apps.monitoring.selectors import _auc, model_quality
from apps.serving.models import Feedback, PredictionLog
from tests.monitoring.conftest import cancer_rows, log_traffic

pytestmark = pytest.mark.django_db


def test_accuracy_and_auc_per_route_against_training_metrics(cancer_endpoint, cancer_model, api_owner):
    logs = log_traffic(cancer_endpoint, cancer_model, cancer_rows(200, seed=4), per_call=1)
    now = timezone.now()
    truth = []
    for i, log in enumerate(logs):
        predicted = int(np.argmax(log.outputs[next(iter(log.outputs))][0]))
        outcome = predicted if i % 4 else 1 - predicted  # three in four right
        truth.append(outcome)
        Feedback.objects.create(endpoint=cancer_endpoint, prediction_id=log.prediction_id, route="main",
                                version=cancer_model, predicted_at=now, outcome=outcome)  # fmt: skip
    Feedback.objects.create(endpoint=cancer_endpoint, prediction_id="unlogged", route="main", version=cancer_model,
                            predicted_at=now, outcome=1)  # fmt: skip
    series = model_quality(cancer_endpoint)["series"]
    assert len(series) == 1
    day = series[0]
    assert day["route"] == "main" and day["version"] == 1
    assert day["outcomes"] == 201 and day["matched"] == 200
    assert day["accuracy"] == pytest.approx(0.75)
    assert 0 <= day["auc"] <= 1
    assert day["training"] == {"accuracy": 0.95, "roc_auc": 0.97}
    body = api_owner.get("/api/v1/endpoints/cancer/monitoring").json()
    assert body["quality"]["series"][0]["accuracy"] == pytest.approx(0.75)
    assert PredictionLog.objects.count() == 200


def test_auc_by_ranks_matches_the_definition():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.8])
    truth = np.array([0, 0, 1, 1, 0])
    positives, negatives = scores[truth == 1], scores[truth == 0]
    pairs = [(p, n) for p in positives for n in negatives]
    expected = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs])
    assert _auc(scores, truth) == pytest.approx(expected)
