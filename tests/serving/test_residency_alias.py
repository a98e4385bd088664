"""Residency of alias moves (issue 17): an alias never moves to a version pinned to a region while an
endpoint of another region follows it (it would serve the version outside its region). Every way
an alias moves is refused before anything changes (409 naming the endpoints, audited as
`residency.refused`): a direct move, a promotion request (at once), the approval that would move
the alias (the request stays awaiting approval, nothing recorded) and a rollback."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.accounts import roles
from apps.approvals import services as approvals
from apps.approvals.models import Decision, PromotionRequest
from apps.catalog import services as catalog
from apps.catalog.models import CARD_SECTIONS, Alias
from apps.core.errors import RegionMismatch
from apps.core.models import AuditEntry
from apps.core.sharing import share_object
from apps.serving.models import Canary
from apps.serving.services.residency import alias_followers
from tests.access.objects import onnx_bytes
from tests.approvals.conftest import SetupTicket, add_version, decide, file_request, run_checks
from tests.conftest import api_client_for, make_user
from tests.serving.conftest import make_endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def regions(settings):
    settings.PORTAL_REGION = "uae-north"  # this portal may store versions pinned to uae-north
    settings.PORTAL_REGIONS = ["uae-north", "eu-west"]


@pytest.fixture(scope="module")
def artifact() -> bytes:
    return onnx_bytes()


@pytest.fixture
def model(owner, artifact):
    """`credit-risk` (unpinned) with a complete card: v1 unpinned behind production and staging, v2
    pinned to uae-north."""
    model = catalog.model_create(actor=owner, name="credit-risk", description="Scores loans")
    catalog.card_update(
        model=model, actor=owner, **{f: f"{label}: written for these tests." for f, label in CARD_SECTIONS}
    )
    v1 = add_version(model, owner, artifact, metrics={"val_auc": 0.90, "val_loss": 0.30})
    ticket = SetupTicket("setup", v1, "production")
    catalog.alias_move(model=model, alias="production", version=v1, actor=owner, promotion=ticket)
    catalog.alias_move(model=model, alias="staging", version=v1, actor=owner)
    add_version(model, owner, artifact, metrics={"val_auc": 0.91, "val_loss": 0.28}, region="uae-north")
    return model


@pytest.fixture
def approvers(db):
    return [make_user(f"approver{i}", roles.APPROVERS) for i in (1, 2, 3)]


@pytest.fixture
def requester(model, collaborator):
    share_object(obj=model, actor=model.owner, role="editor", user=collaborator)
    return collaborator


def v(model, number: int):
    return model.versions.get(version=number)


def follow(owner, name: str, model, alias: str, region: str = "default"):
    return make_endpoint(owner, name, [{"name": "main", "model": model, "alias": alias}], region=region)


def refusals() -> list[dict]:
    found = AuditEntry.objects.filter(additional_data__event="residency.refused").order_by("id")
    return [e.additional_data for e in found]


def pointed(model, alias: str) -> int:
    return Alias.objects.select_related("version").get(model=model, name=alias).version.version


def test_a_direct_move_is_refused_naming_the_endpoints_of_other_regions(owner, model):
    follow(owner, "branch", model, "staging", region="default")
    follow(owner, "eu-branch", model, "staging", region="eu-west")
    follow(owner, "gulf", model, "staging", region="uae-north")  # its own region: no objection
    client = api_client_for(owner)
    response = client.put("/api/v1/models/credit-risk/aliases/staging", {"version": 2}, format="json")
    assert response.status_code == 409, response.content
    detail = response.json()["detail"]
    assert "branch (region 'default')" in detail and "eu-branch (region 'eu-west')" in detail
    assert "gulf" not in detail and "'uae-north'" in detail and "did not move" in detail
    assert pointed(model, "staging") == 1
    (entry,) = refusals()
    assert entry["action"] == "move an alias to" and entry["region"] == "uae-north"
    assert entry["what"] == f"catalog.modelversion:{v(model, 2).pk}"
    assert not AuditEntry.objects.filter(additional_data__event="alias.move", additional_data__to_version=2).exists()

    # The same move once only endpoints of the version's region (and archived ones) follow the alias.
    model.refresh_from_db()
    for name in ("branch", "eu-branch"):
        endpoint = alias_followers(model.pk, "staging")[0]
        assert endpoint.name == name
        endpoint.archived_at = timezone.now()
        endpoint.save()
    response = client.put("/api/v1/models/credit-risk/aliases/staging", {"version": 2}, format="json")
    assert response.status_code == 200, response.content
    assert pointed(model, "staging") == 2 and len(refusals()) == 1


def test_unpinned_versions_move_whoever_follows(owner, model, artifact):
    follow(owner, "branch", model, "staging", region="eu-west")
    v3 = add_version(model, owner, artifact)
    catalog.alias_move(model=model, alias="staging", version=v3, actor=owner)
    assert pointed(model, "staging") == 3 and refusals() == []


def test_a_running_ramp_that_will_follow_the_alias_again_counts_as_a_follower(owner, model):
    endpoint = make_endpoint(owner, "ramping", [{"name": "main", "model": model, "version": v(model, 1)}])
    now = timezone.now()
    Canary.objects.create(
        endpoint=endpoint, version=v(model, 1), route_name="canary", baseline_route="main", steps=[50, 100],
        step_interval_s=60, started_by=owner, step_started_at=now, next_evaluation_at=now, follow_alias="staging",
    )  # fmt: skip
    with pytest.raises(RegionMismatch, match="ramping"):
        catalog.alias_move(model=model, alias="staging", version=v(model, 2), actor=owner)
    assert pointed(model, "staging") == 1 and len(refusals()) == 1


def test_a_promotion_request_is_refused_when_it_is_filed(owner, model, requester):
    follow(owner, "branch", model, "production")
    with pytest.raises(RegionMismatch, match="branch"):
        file_request(v(model, 2), requester)
    assert not PromotionRequest.objects.exists()
    (entry,) = refusals()
    assert entry["region"] == "uae-north"
    assert AuditEntry.objects.filter(additional_data__event="residency.refused", actor=requester).exists()


def test_the_approval_that_would_move_the_alias_is_refused_and_the_request_stays_open(
    owner, model, requester, approvers
):
    promotion = run_checks(file_request(v(model, 2), requester))
    assert promotion.state == "awaiting_approval"
    decide(promotion, approvers[0])  # one of two: nothing moves yet, nothing to refuse
    assert refusals() == []
    follow(owner, "branch", model, "production")  # follows v1 (unpinned) meanwhile
    with pytest.raises(RegionMismatch, match="branch"):
        decide(promotion, approvers[1])
    promotion.refresh_from_db()
    assert promotion.state == "awaiting_approval" and promotion.promoted_at is None
    assert Decision.objects.filter(request=promotion).count() == 1
    assert pointed(model, "production") == 1
    (entry,) = refusals()  # written before the decision's transaction: not rolled back with it
    assert entry["action"] == "move an alias to"


def test_a_rollback_to_a_version_pinned_elsewhere_is_refused_and_the_promotion_stays(
    owner, model, requester, approvers, artifact
):
    pinned = v(model, 2)
    ticket = SetupTicket("setup-2", pinned, "production")
    catalog.alias_move(model=model, alias="production", version=pinned, actor=owner, promotion=ticket)
    v3 = add_version(model, owner, artifact, metrics={"val_auc": 0.92, "val_loss": 0.27})
    promotion = run_checks(file_request(v3, requester))
    decide(promotion, approvers[0])
    decide(promotion, approvers[1])
    assert pointed(model, "production") == 3
    follow(owner, "branch", model, "production")  # unpinned v3: allowed on an endpoint of any region
    with pytest.raises(RegionMismatch, match="branch"):
        approvals.promotion_rollback(
            actor=approvers[2], promotion=PromotionRequest.objects.get(pk=promotion.pk), comment="Latency doubled."
        )
    promotion.refresh_from_db()
    assert promotion.state == "promoted" and pointed(model, "production") == 3
    assert [e["region"] for e in refusals()] == ["uae-north"]
