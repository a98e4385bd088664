"""Core pieces of 'one way to do each thing': errors, names, the favicon, the vault root, audit lists."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from apps.core import errors, vault
from apps.core.names import check_name, slug_from
from apps.core.permissions import require, with_article
from tests.conftest import api_client_for, page_client_for


def test_favicon_is_served_to_anyone(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO header


def test_articles_read_as_english():
    assert with_article("entity") == "an entity"
    assert with_article("model version") == "a model version"


@pytest.mark.django_db
def test_role_refusal_says_an_entity(approver):
    from apps.features.models import Entity

    with pytest.raises(errors.Forbidden, match="create an entity|add an entity"):
        require(approver, "add", Entity)


def test_names_from_usernames_are_valid_slugs():
    assert slug_from("jane_doe.x") == "jane-doe-x"
    assert slug_from("...") == "user"
    check_name(slug_from("Ünïcode__Name.."), route_prefixes=())


@pytest.mark.django_db
def test_fixed_route_words_are_reserved_names():
    with pytest.raises(ValidationError, match="reserved"):
        check_name("new", route_prefixes=("models/",))


def test_domain_errors_are_django_404_and_403():
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    assert isinstance(errors.NotFound(), Http404)
    assert isinstance(errors.Forbidden(), PermissionDenied)
    assert errors.error_body(errors.Conflict("busy")) == (409, {"detail": "busy"})


@pytest.mark.django_db
def test_vault_writes_under_vault_root(tmp_path, owner):
    root = tmp_path / "elsewhere"
    with override_settings(VAULT_ROOT=root):
        blob = vault.blob_store(io.BytesIO(b"hello vault"), purpose="test.vault-root")
        assert any(root.rglob("*")), "nothing was written under VAULT_ROOT"
        assert vault.blob_read(blob) == b"hello vault"


@pytest.mark.django_db
def test_audit_filter_error_names_the_parameter(auditor):
    response = api_client_for(auditor).get("/api/v1/audit/", {"since": "yesterday"})
    assert response.status_code == 400
    assert "since" in response.json()


@pytest.mark.django_db
def test_audit_list_queries_do_not_grow_with_rows(auditor, owner):
    from apps.core.audit import audit_event

    def count(path, client) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200
        return len(ctx.captured_queries)

    api, page = api_client_for(auditor), page_client_for(auditor)
    count("/api/v1/audit/", api)  # warm: the token's last-used stamp is written once a minute
    count("/audit/", page)  # warm: the first view records the audit chain's verified state
    for i in range(5):
        audit_event(actor=owner, event="test.event", data={"i": i})
    # filtered to one kind of entry, so 5 and 50 rows show the same kinds of related names
    few = (count("/api/v1/audit/?event=test.event", api), count("/audit/?event=test.event", page))
    for i in range(45):
        audit_event(actor=owner, event="test.event", data={"i": i})
    assert (count("/api/v1/audit/?event=test.event", api), count("/audit/?event=test.event", page)) == few


@pytest.mark.django_db
def test_page_requires_asks_the_decision_point_only_for_its_method(rf, approver, owner):
    from django.http import HttpResponse

    from apps.core.pages import page_requires
    from apps.features.models import Entity

    @page_requires("add", Entity, on_method="POST")
    def page(request):
        return HttpResponse("ok")

    get, post = rf.get("/"), rf.post("/")
    get.user = post.user = approver  # approvers may not add entities
    assert page(get).status_code == 200
    with pytest.raises(errors.Forbidden, match="an entity"):
        page(post)
    post.user = owner  # ml-engineers and data stewards may
    assert page(post).status_code == 200
