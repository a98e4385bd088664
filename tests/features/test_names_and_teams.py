"""Names that a fixed route would hide are refused; `team=` on a create shares with the team as
viewer (the actor must be in it); every kind has its `{object}/sharing` API."""

from __future__ import annotations

import pytest

from apps.accounts.services import team_create
from apps.core.permissions import can
from apps.features import services, training_sets
from apps.features.models import Entity, FeatureView, TrainingSet
from tests.conftest import api_client_for, make_user
from tests.conftest import page_client_for as browser
from tests.features.conftest import FEATURES, rows

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["new", "lookup", "training-sets", "entities"])
def test_feature_views_named_like_a_fixed_route_are_refused(api_owner, customer, name):
    body = {"name": name, "entity": "customer", "features": FEATURES}
    response = api_owner.post("/api/v1/feature-views/", body, format="json")
    assert response.status_code == 400 and "reserved" in response.json()["name"][0]
    assert not FeatureView.objects.filter(name=name).exists()


def test_a_feature_view_with_an_ordinary_name_gets_its_own_page(api_owner, customer, owner):
    body = {"name": "lookups", "entity": "customer", "features": FEATURES}
    assert api_owner.post("/api/v1/feature-views/", body, format="json").status_code == 201
    page = browser(owner).get("/features/lookups/")
    assert page.status_code == 200 and b"Online lookup tester" not in page.content


def test_entities_named_like_a_fixed_route_are_refused(api_owner):
    body = {"name": "new", "join_keys": [{"name": "id", "dtype": "int64"}]}
    response = api_owner.post("/api/v1/entities/", body, format="json")
    assert response.status_code == 400 and "reserved" in response.json()["name"][0]
    assert not Entity.objects.exists()


def test_training_set_names_follow_the_name_rule(api_owner, ingested):
    body = {"name": "Churn June", "features": ["customer-stats:balance"],
            "entity_rows": [{"customer_id": 1, "event_timestamp": "2024-06-01"}]}  # fmt: skip
    response = api_owner.post("/api/v1/training-sets/", body, format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert not TrainingSet.objects.exists()


def test_unknown_fields_are_refused_by_name(api_owner, customer, view):
    body = {"name": "v2", "entity": "customer", "features": FEATURES, "desciption": "typo"}
    assert api_owner.post("/api/v1/feature-views/", body, format="json").json() == {"desciption": ["Unknown field."]}
    response = api_owner.patch(f"/api/v1/feature-views/{view.name}/", {"team": "risk"}, format="json")
    assert response.status_code == 400 and response.json() == {"team": ["Unknown field."]}


def test_objects_created_for_a_team_are_shared_with_it_as_viewer(owner, team, customer):
    analyst = make_user("analyst")
    team.group.user_set.add(analyst)
    entity = services.entity_create(actor=owner, name="shop", join_keys=[{"name": "shop_id", "dtype": "string"}],
                                    team="risk")  # fmt: skip
    view = services.feature_view_create(actor=owner, name="sales", entity=customer, features=FEATURES, team="risk")
    services.feature_view_ingest(view=view, actor=owner, data=rows(2, 1))
    ts = training_sets.training_set_create(
        actor=owner, name="sales-set", features=["sales:balance"], team="risk",
        entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}],
    )  # fmt: skip
    for obj in (entity, view, ts):
        assert obj.team == team
        assert can(analyst, "view", obj) and not can(analyst, "change", obj)
    assert api_client_for(analyst).get(f"/api/v1/training-sets/{ts.pk}/").status_code == 200


def test_team_on_create_must_be_one_of_the_actors_teams(api_owner, customer):
    team_create(name="Other", slug="other", members=[make_user("member")])
    body = {"name": "sales", "entity": "customer", "features": FEATURES, "team": "other"}
    response = api_owner.post("/api/v1/feature-views/", body, format="json")
    assert response.status_code == 400 and "not a member" in response.json()["team"][0]
    response = api_owner.post("/api/v1/feature-views/", {**body, "team": "nope"}, format="json")
    assert response.status_code == 400 and "No team" in response.json()["team"][0]
    assert not FeatureView.objects.exists()


def test_sharing_api_for_feature_views_entities_and_training_sets(api_owner, owner, collaborator, ingested):
    ts = training_sets.training_set_create(actor=owner, name="s", features=["customer-stats:balance"],
                                           entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}])  # fmt: skip
    guest = api_client_for(collaborator)
    urls = {
        f"/api/v1/entities/{ingested.entity.name}/sharing": f"/api/v1/entities/{ingested.entity.name}/",
        f"/api/v1/feature-views/{ingested.name}/sharing": f"/api/v1/feature-views/{ingested.name}/",
        f"/api/v1/training-sets/{ts.pk}/sharing": f"/api/v1/training-sets/{ts.pk}/",
    }
    for sharing, detail in urls.items():
        assert guest.get(detail).status_code == 404 and guest.get(sharing).status_code == 404
        assert api_owner.post(sharing, {"user": "collaborator", "role": "viewer"}, format="json").status_code == 204
        assert api_owner.get(sharing).json() == [{"user": "collaborator", "role": "viewer", "grants": []}]
        assert guest.get(detail).status_code == 200 and guest.get(sharing).status_code == 403
        assert api_owner.delete(sharing, {"user": "collaborator"}, format="json").status_code == 204
        assert guest.get(detail).status_code == 404


def test_feature_view_sharing_api_offers_view_pii(api_owner, view, collaborator):
    sharing = f"/api/v1/feature-views/{view.name}/sharing"
    body = {"user": "collaborator", "role": "viewer", "grants": ["view_pii"]}
    assert api_owner.post(sharing, body, format="json").status_code == 204
    assert api_owner.get(sharing).json() == [{"user": "collaborator", "role": "viewer", "grants": ["view_pii"]}]
    detail = api_client_for(collaborator).get(f"/api/v1/feature-views/{view.name}/").json()
    assert detail["can_view_pii"] is True
    entity_sharing = f"/api/v1/entities/{view.entity.name}/sharing"
    assert api_owner.post(entity_sharing, body, format="json").status_code == 400  # no PII grant on entities


def test_training_set_page_shares_through_the_one_share_service(owner, collaborator, ingested):
    ts = training_sets.training_set_create(actor=owner, name="s", features=["customer-stats:balance"],
                                           entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}])  # fmt: skip
    page = f"/features/training-sets/{ts.pk}/"
    assert browser(collaborator).get(page).status_code == 404
    response = browser(owner).post(page + "share/", {"user": "collaborator", "role": "viewer"}, follow=True)
    assert b"Shared with collaborator as viewer" in response.content
    assert browser(collaborator).get(page).status_code == 200
    assert browser(collaborator).post(page + "share/", {"user": "collaborator", "role": "editor"}).status_code == 403
    browser(owner).post(page + "unshare/", {"user": "collaborator"})
    assert browser(collaborator).get(page).status_code == 404
