"""The demo seed leaves the leadership inbox and the evidence pages full on the first run: one
promoted request, one awaiting the demo approver, one blocked by failed checks; again: no change."""

from __future__ import annotations

import io

import pytest

from apps.accounts import roles
from apps.approvals import seed
from apps.approvals.models import PromotionRequest
from apps.approvals.selectors import inbox_for
from apps.catalog.models import Alias
from apps.core.audit import verify_chain
from apps.notifications.models import Notification
from tests.conftest import make_user, page_client_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_demo_seed_leaves_requests_for_the_inbox_and_is_idempotent():
    users = {
        "engineer": make_user("engineer", roles.ML_ENGINEERS),
        "engineer2": make_user("engineer2", roles.ML_ENGINEERS),
        "approver": make_user("approver", roles.APPROVERS),
        "admin": make_user("admin", roles.PLATFORM_ADMINS, is_staff=True, is_superuser=True),
    }
    out = io.StringIO()
    seed.seed(users=users, team=None, out=out)
    by_state = sorted(PromotionRequest.objects.values_list("model__name", "version__version", "state"))
    assert by_state == [
        ("breast-cancer-mlp", 1, "promoted"),
        ("breast-cancer-mlp", 2, "awaiting_approval"),
        ("wine-mlp", 1, "checks_failed"),
    ], out.getvalue()
    assert Alias.objects.get(model__name="breast-cancer-mlp", name="production").version.version == 1
    awaiting = list(inbox_for(users["approver"])["awaiting"])
    assert [(p.model.name, p.version.version) for p in awaiting] == [("breast-cancer-mlp", 2)]
    assert Notification.objects.filter(recipient=users["approver"], kind="promotion.requested").count() == 2
    page = page_client_for(users["approver"]).get(f"/approvals/requests/{awaiting[0].pk}/")
    assert page.status_code == 200 and b'data-role="decision-form"' in page.content
    assert verify_chain().ok

    seed.seed(users=users, team=None, out=out)
    assert PromotionRequest.objects.count() == 3
    assert "already has promotion requests" in out.getvalue()
