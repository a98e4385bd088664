"""Registered models over the API: create, read, change, archive, list filters, permissions."""

from __future__ import annotations

import pytest
import yaml

from apps.accounts.services import team_create
from apps.catalog import services
from apps.catalog.models import RegisteredModel
from apps.core.permissions import share
from tests.catalog.conftest import add_versions, queries_for
from tests.conftest import api_client_for, make_user
from tests.permissions import StrangerDeniedMixin

pytestmark = pytest.mark.django_db


class TestModelStranger(StrangerDeniedMixin):
    list_url = "/api/v1/models/"
    change_payload = {"description": "hijacked"}

    def make_object(self, owner):
        return services.model_create(actor=owner, name="secret-model")

    def detail_url(self, obj):
        return f"/api/v1/models/{obj.name}/"

    def extra_urls(self, obj):
        return [f"/api/v1/models/{obj.name}/versions/", f"/api/v1/models/{obj.name}/card",
                f"/api/v1/models/{obj.name}/aliases/", f"/api/v1/models/{obj.name}/aliases/production"]  # fmt: skip

    def test_stranger_cannot_write_anything_else(self, stranger, target):
        client = api_client_for(stranger)
        base = self.detail_url(target)
        assert client.patch(f"{base}card", {"intended_use": "x" * 30}, format="json").status_code == 404
        assert client.post(f"{base}sharing", {"user": "stranger", "role": "editor"}, format="json").status_code == 404
        assert client.put(f"{base}aliases/staging", {"version": 1}, format="json").status_code == 404
        assert client.post(f"{base}versions/", {}, format="multipart").status_code == 404
        target.refresh_from_db()
        assert target.description == "" and target.archived_at is None


def test_create_read_update_archive(api_owner, owner, team):
    r = api_owner.post("/api/v1/models/", {"name": "fraud-gbm", "description": "Card fraud", "tags": ["Fraud", "tabular"],
                                           "team": "risk"}, format="json")  # fmt: skip
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["owner"] == "owner" and body["team"] == "risk" and body["tags"] == ["fraud", "tabular"]
    assert body["card"]["completeness"] == 0 and body["permissions"] == ["view", "change", "delete"]
    r = api_owner.patch("/api/v1/models/fraud-gbm/", {"description": "Card-not-present fraud"}, format="json")
    assert r.status_code == 200 and r.json()["description"] == "Card-not-present fraud"
    r = api_owner.patch("/api/v1/models/fraud-gbm/card", {"intended_use": "Score card-not-present transactions."},
                        format="json")  # fmt: skip
    assert r.status_code == 200 and r.json()["completeness"] == pytest.approx(1 / 7, abs=0.001)
    assert api_owner.delete("/api/v1/models/fraud-gbm/").status_code == 204
    assert api_owner.get("/api/v1/models/fraud-gbm/").json()["archived"] is True
    assert all(m["name"] != "fraud-gbm" for m in api_owner.get("/api/v1/models/").json()["results"])
    assert any(m["name"] == "fraud-gbm" for m in api_owner.get("/api/v1/models/?archived=true").json()["results"])


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "Bad Name"}, "name"),
        ({"name": "-x"}, "name"),
        ({"name": "new"}, "name"),
        ({"name": "ok", "tags": ["no spaces"]}, "tags"),
        ({"name": "ok", "tags": "notalist"}, "tags"),
        ({"name": "ok", "team": "nope"}, "team"),
        ({"name": "ok", "desciption": "typo"}, "desciption"),
        ({}, "name"),
    ],
)
def test_create_validation(api_owner, payload, field):
    r = api_owner.post("/api/v1/models/", payload, format="json")
    assert r.status_code == 400 and field in r.json(), r.content


def test_duplicate_name_and_roles(api_owner, approver):
    assert api_owner.post("/api/v1/models/", {"name": "dup"}, format="json").status_code == 201
    r = api_owner.post("/api/v1/models/", {"name": "dup"}, format="json")
    assert r.status_code == 400 and "already exists" in r.json()["name"][0]
    r = api_client_for(approver).post("/api/v1/models/", {"name": "not-mine"}, format="json")
    assert r.status_code == 403 and "ask a platform admin" in r.json()["detail"]
    read_only = api_client_for(make_user("reader", "ml-engineers"), scopes=("read",))
    assert read_only.post("/api/v1/models/", {"name": "scoped"}, format="json").status_code == 403


def test_viewer_and_editor_rights(owner, collaborator, registered, api_collaborator, team):
    assert api_collaborator.get("/api/v1/models/credit-risk/").status_code == 404
    share(registered, role="viewer", team=team)
    assert api_collaborator.get("/api/v1/models/credit-risk/").json()["permissions"] == ["view"]
    assert api_collaborator.patch("/api/v1/models/credit-risk/", {"description": "x"}, format="json").status_code == 403
    assert api_collaborator.delete("/api/v1/models/credit-risk/").status_code == 403
    share(registered, role="editor", user=collaborator)
    assert api_collaborator.patch("/api/v1/models/credit-risk/", {"description": "x"}, format="json").status_code == 200
    assert api_collaborator.delete("/api/v1/models/credit-risk/").status_code == 403  # only the owner archives


def test_sharing_api(api_owner, collaborator, api_collaborator, registered, team):
    assert api_owner.post("/api/v1/models/credit-risk/sharing", {"user": "collaborator", "role": "editor"},
                          format="json").status_code == 204  # fmt: skip
    assert api_collaborator.get("/api/v1/models/credit-risk/").json()["permissions"] == ["view", "change"]
    assert api_owner.post("/api/v1/models/credit-risk/sharing", {"user": "nobody"}, format="json").status_code == 400
    assert api_owner.post("/api/v1/models/credit-risk/sharing", {"user": "owner"}, format="json").status_code == 400
    assert api_owner.post("/api/v1/models/credit-risk/sharing", {}, format="json").status_code == 400
    assert (
        api_owner.delete("/api/v1/models/credit-risk/sharing", {"user": "collaborator"}, format="json").status_code
        == 204
    )
    assert api_collaborator.get("/api/v1/models/credit-risk/").status_code == 404


def test_list_filters_sort_and_pagination(owner, api_owner, stranger):
    for i, (tags, fw) in enumerate([(["fraud"], "pytorch"), (["fraud", "nlp"], "sklearn"), (["vision"], "pytorch")]):
        m = services.model_create(actor=owner, name=f"m-{i}", description=f"model number {i}", tags=tags)
        RegisteredModel.objects.filter(pk=m.pk).update(framework=fw)
    services.model_create(actor=stranger, name="theirs", tags=["fraud"])

    def names(query):
        r = api_owner.get(f"/api/v1/models/{query}")
        assert r.status_code == 200, r.content
        return [m["name"] for m in r.json()["results"]]

    assert names("") == ["m-0", "m-1", "m-2"]
    assert names("?tag=fraud") == ["m-0", "m-1"]
    assert names("?tag=fra") == []  # whole tags only
    assert names("?framework=pytorch&sort=-name") == ["m-2", "m-0"]
    assert names("?q=number 1") == ["m-1"]
    assert names("?owner=stranger") == []
    assert names("?alias=production") == []
    assert names("?sort=name&page_size=2&unknown=ignored") == ["m-0", "m-1"]
    assert api_owner.get("/api/v1/models/?page=99").status_code == 404


@pytest.mark.parametrize("query, parameter", [("sort=bogus", "sort"), ("framework=cobol", "framework"),
                                              ("archived=maybe", "archived"), (f"q={'x' * 101}", "q")])  # fmt: skip
def test_bad_list_filter_is_400_naming_the_parameter(api_owner, query, parameter):
    r = api_owner.get(f"/api/v1/models/?{query}")
    assert r.status_code == 400 and parameter in r.json(), r.content


def test_schema_lists_model_filters(api_owner):
    schema = yaml.safe_load(api_owner.get("/api/v1/schema/").content)
    names = {p["name"] for p in schema["paths"]["/api/v1/models/"]["get"]["parameters"]}
    assert {"q", "tag", "owner", "alias", "framework", "archived", "sort", "page", "page_size"} <= names


def test_model_list_query_count_is_the_same_for_5_and_50_models(owner, api_owner, version, team):
    def grow(count: int) -> None:
        for _ in range(count):
            model = services.model_create(
                actor=owner, name=f"bulk-{RegisteredModel.objects.count()}", tags=["t"], team="risk"
            )
            add_versions(model, owner, version.artifact, 1)

    grow(4)
    url = "/api/v1/models/?page_size=50"
    queries_for(api_owner, url)  # warm per-process caches (content types)
    five = queries_for(api_owner, url, rows=5)
    grow(45)
    assert queries_for(api_owner, url, rows=50) == five
    bulk = next(m for m in api_owner.get(url).json()["results"] if m["name"] == "bulk-1")
    assert bulk["aliases"] == {"a1": 1} and bulk["url"] == "/api/v1/models/bulk-1/" and bulk["team"] == "risk"


def test_team_on_create_makes_the_team_a_viewer(api_owner, collaborator, api_collaborator, team):
    assert api_owner.post("/api/v1/models/", {"name": "team-model", "team": "risk"}, format="json").status_code == 201
    assert api_collaborator.get("/api/v1/models/team-model/").json()["permissions"] == ["view"]


def test_team_on_create_needs_membership(api_owner, stranger):
    team_create(name="Other", slug="other", members=[stranger])
    r = api_owner.post("/api/v1/models/", {"name": "not-theirs", "team": "other"}, format="json")
    assert r.status_code == 400 and "not a member" in r.json()["team"][0]
    assert not RegisteredModel.objects.filter(name="not-theirs").exists()


def test_sharing_api_lists_who_has_access(api_owner, collaborator, registered, team):
    api_owner.post("/api/v1/models/credit-risk/sharing", {"team": "risk", "role": "viewer"}, format="json")
    api_owner.post("/api/v1/models/credit-risk/sharing", {"user": "collaborator", "role": "editor"}, format="json")
    listing = api_owner.get("/api/v1/models/credit-risk/sharing").json()
    assert {"user": "collaborator", "role": "editor", "grants": []} in listing
    assert {"team": "risk", "role": "viewer", "grants": []} in listing


def test_the_hand_built_list_row_equals_drf_rendering_field_by_field(owner, version, team):
    """RegisteredModelSerializer builds list rows as plain dicts for speed (apps/core/api/rows.py);
    DRF's own field-by-field rendering of the same model must give the same row."""
    from rest_framework import serializers as drf

    from apps.catalog import selectors
    from apps.catalog.api.serializers import RegisteredModelSerializer

    model = services.model_create(actor=owner, name="row-check", tags=["a", "b"], team="risk")
    add_versions(model, owner, version.artifact, 2)
    services.model_archive(model=model, actor=owner)
    for filters in ({}, {"archived": True}):
        for row in selectors.with_aliases(list(selectors.models_visible(owner, filters))):
            serializer = RegisteredModelSerializer(row)
            assert serializer.data == drf.ModelSerializer.to_representation(serializer, row)
