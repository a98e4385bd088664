"""Two last approvals racing promote exactly once: real threads, each with its own database
connection, on whichever database the run uses (SQLite in WAL mode with IMMEDIATE transactions,
or PostgreSQL in the services mode, DATABASE_URL). The request row lock serialises them."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from apps.approvals.models import PromotionRequest
from apps.catalog.models import Alias
from apps.core.audit import verify_chain
from apps.core.errors import Conflict
from apps.core.models import AuditEntry
from tests.approvals.conftest import decide, digest_of, file_request, run_checks

pytestmark = pytest.mark.django_db(transaction=True)


def race(promotion, people, digest) -> list:
    """Each person approves at the same moment from their own thread; returns what each got."""
    barrier = threading.Barrier(len(people))
    outcomes: list = [None] * len(people)

    def approve(index: int, person) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = decide(promotion, person, digest=digest)
        except Exception as exc:  # the outcome is what the test asserts
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=(i, person)) for i, person in enumerate(people)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


@pytest.mark.parametrize("rounds", range(3))
def test_two_last_approvals_racing_promote_exactly_once(model, v2, requester, approvers, rounds):
    promotion = run_checks(file_request(v2, requester))
    decide(promotion, approvers[0])  # one more approval makes it: both racers are "the last"
    outcomes = race(promotion, approvers[1:], digest_of(promotion))
    promoted = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(promoted) == 1, outcomes
    assert len(refused) == 1 and isinstance(refused[0], Conflict), outcomes
    promotion = PromotionRequest.objects.get(pk=promotion.pk)
    assert promotion.state == "promoted" and promotion.decisions.count() == 2
    assert Alias.objects.get(model=model, name="production").version == v2
    moves = AuditEntry.objects.filter(additional_data__event="alias.move", additional_data__to_version=2)
    assert moves.count() == 1
    assert (
        AuditEntry.objects.filter(object_pk=str(promotion.pk), additional_data__event="promotion.promote").count() == 1
    )
    assert verify_chain().ok, connection.vendor
