"""Two beats evaluating the same due canary at once: exactly one acts (row lock and re-check)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.core.audit import system_user
from apps.serving.models import Canary, Route
from apps.serving.services.canaries import canaries_evaluate_due, canary_start
from tests.serving.conftest import make_endpoint, version_of
from tests.serving.test_canary import step_traffic


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_beats_advance_a_step_once(owner, scorer):
    endpoint = make_endpoint(owner, "raced", [{"name": "main", "model": scorer, "version": version_of(scorer, 1)}])
    canary = canary_start(
        actor=owner, endpoint=endpoint, version=2, steps=[5, 25, 50, 100], step_interval_s=60,
        guards={"error_rate": 0.02, "min_samples": 100},
    )  # fmt: skip
    step_traffic(canary)
    actor, due = system_user(), canary.next_evaluation_at
    barrier, results, errors = threading.Barrier(2), [], []

    def beat():
        try:
            barrier.wait(10)
            results.append(canaries_evaluate_due(actor=actor, now=due))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(results, key=len) == [{}, {canary.pk: "advanced"}]
    canary.refresh_from_db()
    assert len(canary.evaluations) == 1 and canary.weight == 25
    assert {r.name: r.weight for r in Route.objects.filter(endpoint=endpoint)} == {"main": 75, "canary": 25}
    assert Canary.objects.filter(state="running").count() == 1
