"""Aliases: unprotected moves; protected aliases move only with an approved promotion (a platform
admin may lift the protection); every refusal names POST /api/v1/promotions/."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.admin.sites import site
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from apps.catalog import services
from apps.catalog.models import Alias
from apps.core.errors import Conflict
from apps.core.models import AuditEntry
from apps.core.permissions import share
from tests.catalog.conftest import add_versions, queries_for, register

pytestmark = pytest.mark.django_db


@dataclass
class FakePromotion:
    pk: int
    is_approved: bool
    model_version: object
    target_alias: str


@pytest.fixture
def two_versions(version, registered, owner, onnx_bytes):
    return version, register(registered, owner, onnx_bytes, metrics={"auc": 0.93})


def test_unprotected_alias_moves_and_is_audited(api_owner, two_versions):
    v1, v2 = two_versions
    r = api_owner.put("/api/v1/models/credit-risk/aliases/staging", {"version": 1}, format="json")
    assert r.status_code == 200, r.content
    r = api_owner.put("/api/v1/models/credit-risk/aliases/staging", {"version": 2}, format="json")
    assert r.json()["version"] == 2
    got = api_owner.get("/api/v1/models/credit-risk/aliases/staging").json()
    assert got["version"] == 2 and got["protected"] is False
    moves = AuditEntry.objects.filter(additional_data__event="alias.move").order_by("id")
    assert [(m.additional_data["from_version"], m.additional_data["to_version"]) for m in moves] == [(None, 1), (1, 2)]
    assert moves.last().actor.username == "owner"
    assert api_owner.get("/api/v1/models/credit-risk/").json()["aliases"] == {"staging": 2}
    assert api_owner.delete("/api/v1/models/credit-risk/aliases/staging").status_code == 204
    assert api_owner.get("/api/v1/models/credit-risk/aliases/staging").status_code == 404


def test_protected_alias_refuses_direct_move(api_owner, owner, registered, two_versions):
    v1, v2 = two_versions
    r = api_owner.put("/api/v1/models/credit-risk/aliases/production", {"version": 1}, format="json")
    assert r.status_code == 409 and "approved promotion" in r.json()["detail"]
    assert "POST /api/v1/promotions/" in r.json()["detail"]  # the endpoint exists now (issue #14)
    assert not Alias.objects.filter(name="production").exists()
    # An approved promotion for exactly this version and alias moves it.
    alias = services.alias_move(
        model=registered,
        alias="production",
        version=v1,
        actor=owner,
        promotion=FakePromotion(7, True, v1, "production"),
    )
    assert alias.protected and alias.version == v1 and alias.promotion_ref == "7"
    for promotion in (
        None,
        FakePromotion(8, False, v2, "production"),
        FakePromotion(9, True, v1, "production"),
        FakePromotion(10, True, v2, "staging"),
    ):
        with pytest.raises(Conflict):
            services.alias_move(model=registered, alias="production", version=v2, actor=owner, promotion=promotion)
    r = api_owner.put("/api/v1/models/credit-risk/aliases/production", {"version": 2}, format="json")
    assert r.status_code == 409
    assert api_owner.delete("/api/v1/models/credit-risk/aliases/production").status_code == 409
    alias.refresh_from_db()
    assert alias.version == v1


def test_protection_can_be_set_by_editor_but_lifted_only_by_platform_admin(
    api_owner, api_admin, api_collaborator, collaborator, registered, two_versions
):
    """shared/API.md: editors protect, only platform admins lift (403 otherwise), the owner too."""
    share(registered, role="editor", user=collaborator)
    url = "/api/v1/models/credit-risk/aliases/champion-b"
    api_collaborator.put(url, {"version": 1}, format="json")
    r = api_collaborator.patch(url, {"protected": True}, format="json")
    assert r.status_code == 200 and r.json()["protected"] is True
    assert api_collaborator.put(url, {"version": 2}, format="json").status_code == 409
    for client in (api_collaborator, api_owner):
        r = client.patch(url, {"protected": False}, format="json")
        assert r.status_code == 403 and "platform admin" in r.json()["detail"]
    assert api_admin.patch(url, {"protected": False}, format="json").status_code == 200
    assert api_collaborator.put(url, {"version": 2}, format="json").status_code == 200


def test_alias_validation_and_viewer_rights(api_owner, api_collaborator, collaborator, registered, two_versions):
    assert (
        api_owner.put("/api/v1/models/credit-risk/aliases/Bad Name!", {"version": 1}, format="json").status_code == 400
    )
    assert (
        api_owner.put("/api/v1/models/credit-risk/aliases/staging", {"version": 99}, format="json").status_code == 404
    )
    assert (
        api_owner.put("/api/v1/models/credit-risk/aliases/staging", {"version": "x"}, format="json").status_code == 400
    )
    share(registered, role="viewer", user=collaborator)
    assert (
        api_collaborator.put("/api/v1/models/credit-risk/aliases/staging", {"version": 1}, format="json").status_code
        == 403
    )


def test_admin_refuses_protected_alias_changes(admin_user, owner, registered, two_versions):
    v1, v2 = two_versions
    alias = services.alias_move(
        model=registered,
        alias="production",
        version=v1,
        actor=owner,
        promotion=FakePromotion(1, True, v1, "production"),
    )
    admin = site._registry[Alias]
    request = RequestFactory().get("/")
    request.user = admin_user
    assert "version" in admin.get_readonly_fields(request, alias)
    assert not admin.has_delete_permission(request, alias)
    alias.version = v2
    with pytest.raises((Conflict, PermissionDenied)):
        admin.save_model(request, alias, form=None, change=True)
    alias.refresh_from_db()
    assert alias.version == v1


def test_protected_alias_conflict_names_the_promotions_endpoint(api_owner, api_admin, owner, registered, two_versions):
    """The 409 names POST /api/v1/promotions/ (issue #14), on PUT and DELETE alike; a platform
    admin may still lift the protection, after which the alias moves like any other."""
    v1, v2 = two_versions
    services.alias_move(model=registered, alias="production", version=v1, actor=owner,
                        promotion=FakePromotion(1, True, v1, "production"))  # fmt: skip
    url = "/api/v1/models/credit-risk/aliases/production"
    for refused in (api_owner.put(url, {"version": 2}, format="json"), api_owner.delete(url)):
        detail = refused.json()["detail"]
        assert refused.status_code == 409 and "POST /api/v1/promotions/" in detail
        assert '"target_alias": "production"' in detail
    assert api_admin.patch(url, {"protected": False}, format="json").status_code == 200
    assert api_owner.put(url, {"version": 2}, format="json").json()["version"] == 2


def test_new_alias_can_be_created_protected(api_collaborator, collaborator, registered, two_versions):
    share(registered, role="editor", user=collaborator)
    url = "/api/v1/models/credit-risk/aliases/canary"
    r = api_collaborator.put(url, {"version": 1, "protected": True}, format="json")
    assert r.status_code == 200 and r.json()["protected"] is True
    assert api_collaborator.put(url, {"version": 2}, format="json").status_code == 409


def test_alias_list_query_count_is_the_same_for_5_and_50_aliases(api_owner, owner, registered, version):
    add_versions(registered, owner, version.artifact, 5)
    url = "/api/v1/models/credit-risk/aliases/?page_size=100"
    queries_for(api_owner, url)
    five = queries_for(api_owner, url, rows=5)
    add_versions(registered, owner, version.artifact, 45)
    assert queries_for(api_owner, url, rows=50) == five
    first = api_owner.get(url).json()["results"][0]
    assert first["version_url"] == f"/api/v1/models/credit-risk/versions/{first['version']}/"
