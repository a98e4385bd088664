"""The promotions list (API and page), the leadership inbox and the notifications list (API and
page) cost the same number of queries at 5 and at 50 rows: nothing is read per row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts import roles
from apps.approvals.models import PromotionRequest
from apps.notifications.models import Notification
from tests.conftest import api_client_for, page_client_for

pytestmark = pytest.mark.django_db

STATES = ["awaiting_approval", "promoted", "rejected", "checks_failed", "withdrawn"]
DECIDED = {"promoted", "rejected", "withdrawn"}


def _promotions(model, v1, v2, requester, count: int) -> None:
    """`count` requests in every state, each one open to the approvers group."""
    now = timezone.now()
    PromotionRequest.objects.bulk_create(
        PromotionRequest(
            model=model,
            version=v2,
            target_alias="production",
            requested_by=requester,
            justification=f"Request {i}",
            approvals_required=2,
            state=STATES[i % len(STATES)],
            previous_version=v1 if STATES[i % len(STATES)] == "promoted" else None,
            decided_at=now if STATES[i % len(STATES)] in DECIDED else None,
            expires_at=now + timedelta(days=1),
        )
        for i in range(count)
    )
    group = Group.objects.get(name=roles.APPROVERS)
    through = PromotionRequest.approver_groups.through
    linked = set(through.objects.values_list("promotionrequest_id", flat=True))
    through.objects.bulk_create(
        through(promotionrequest_id=pk, group_id=group.pk)
        for pk in PromotionRequest.objects.exclude(pk__in=linked).values_list("pk", flat=True)
    )


def _notifications(user, count: int) -> None:
    now = timezone.now()
    Notification.objects.bulk_create(
        Notification(
            recipient=user,
            kind="promotion.requested" if i % 2 else "job.finished",
            title=f"Notification {i}",
            body="body",
            url="/approvals/",
            object_type="approvals.promotionrequest" if i % 2 else "",
            object_id=str(i) if i % 2 else "",
            read_at=now if i % 3 == 0 else None,
        )
        for i in range(count)
    )


def _queries(client, url: str) -> int:
    client.get(url)  # per-user caches (roles, content types, session) warm on both sides alike
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(captured)


PROMOTION_URLS = [
    ("api", "/api/v1/promotions/?page_size=100"),
    ("api", "/api/v1/promotions/?awaiting=me&page_size=100"),
    ("page", "/approvals/"),
    ("page", "/approvals/requests/"),
]


@pytest.mark.parametrize("kind, url", PROMOTION_URLS)
@pytest.mark.parametrize("who", ["approver", "requester"])
def test_promotion_lists_and_inbox_do_not_grow_with_rows(model, v1, v2, requester, approvers, kind, url, who):
    user = approvers[0] if who == "approver" else requester
    client = api_client_for(user) if kind == "api" else page_client_for(user)
    _promotions(model, v1, v2, requester, 5)
    at_5 = _queries(client, url)
    _promotions(model, v1, v2, requester, 45)
    at_50 = _queries(client, url)
    assert at_50 == at_5, f"{url} as {who}: {at_5} queries at 5 rows, {at_50} at 50"
    if kind == "api" and "awaiting" not in url:
        assert client.get(url).json()["count"] == 50
    if url == "/approvals/":  # the inbox really lists rows (awaiting for the approver, mine for the requester)
        assert client.get(url).content.decode().count("data-promotion=") >= 20


@pytest.mark.parametrize("kind, url", [("api", "/api/v1/notifications/?page_size=100"), ("page", "/notifications/")])
def test_notification_lists_do_not_grow_with_rows(owner, kind, url):
    client = api_client_for(owner) if kind == "api" else page_client_for(owner)
    _notifications(owner, 5)
    at_5 = _queries(client, url)
    _notifications(owner, 45)
    at_50 = _queries(client, url)
    assert at_50 == at_5, f"{url}: {at_5} queries at 5 rows, {at_50} at 50"
    if kind == "api":
        assert client.get(url).json()["count"] == 50
