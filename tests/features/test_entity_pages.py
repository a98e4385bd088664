"""Entity pages: a list of the entities a user can read and a page per entity (join keys, the feature
views on it, sharing for its owner and editors); the entity form lands on the new entity's page."""

from __future__ import annotations

import pytest

from apps.core.permissions import can, share
from apps.features import services
from apps.features.models import Entity
from tests.conftest import page_client_for as browser
from tests.features.conftest import FEATURES

pytestmark = pytest.mark.django_db


def test_entity_list_shows_readable_entities_with_keys_owner_and_their_views(owner, stranger, customer, view):
    services.entity_create(actor=stranger, name="secret", join_keys=[{"name": "secret_id", "dtype": "string"}])
    share(customer, role="viewer", user=stranger)
    hidden = services.feature_view_create(actor=stranger, name="hidden-view", entity=customer, features=FEATURES)
    response = browser(owner).get("/features/entities/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/features/entities/customer/"' in body and "<code>customer_id</code> int64" in body
    assert 'href="/features/customer-stats/"' in body and "owner" in body
    assert "secret" not in body and hidden.name not in body  # only what the user may read


def test_entity_page_shows_join_keys_description_and_views_built_on_it(owner, customer, view):
    Entity.objects.filter(pk=customer.pk).update(description="a bank customer")
    response = browser(owner).get("/features/entities/customer/")
    body = response.content.decode()
    assert response.status_code == 200 and "a bank customer" in body
    assert "<code>customer_id</code> int64" in body and 'href="/features/customer-stats/"' in body
    assert 'id="sharing"' in body  # the owner may share it


def test_entity_page_offers_sharing_to_owner_and_editors_only(owner, collaborator, customer):
    share(customer, role="viewer", user=collaborator)
    page = browser(collaborator).get("/features/entities/customer/")
    assert page.status_code == 200 and b'id="sharing"' not in page.content
    share(customer, role="editor", user=collaborator)
    assert b'id="sharing"' in browser(collaborator).get("/features/entities/customer/").content


def test_entity_page_shares_and_unshares(owner, collaborator, customer):
    client = browser(owner)
    response = client.post("/features/entities/customer/share/", {"user": "collaborator", "role": "viewer"})
    assert response.status_code == 302 and response["Location"] == "/features/entities/customer/"
    assert can(collaborator, "view", customer) and not can(collaborator, "change", customer)
    client.post("/features/entities/customer/unshare/", {"user": "collaborator"})
    assert not can(collaborator, "view", customer)


def test_entity_page_share_form_errors_show_inline(owner, customer):
    response = browser(owner).post("/features/entities/customer/share/", {"user": "nobody", "role": "viewer"})
    assert response.status_code == 400 and b"No active user" in response.content


def test_entity_page_is_404_for_strangers(stranger, customer):
    assert browser(stranger).get("/features/entities/customer/").status_code == 404


def test_entity_create_form_lands_on_the_new_entity_page(owner):
    response = browser(owner).post("/features/entities/new/", {"name": "account", "join_keys": "account_id:int64"})
    assert response.status_code == 302 and response["Location"] == "/features/entities/account/"


def test_entity_named_like_a_fixed_entity_route_is_refused_on_the_form(owner):
    response = browser(owner).post("/features/entities/new/", {"name": "new", "join_keys": "id:int64"})
    assert response.status_code == 200 and b"reserved" in response.content
    assert not Entity.objects.filter(name="new").exists()


def test_entity_named_like_a_view_sub_route_still_gets_its_own_page(owner):
    # /features/<view>/ingest/ must not swallow /features/entities/ingest/
    services.entity_create(actor=owner, name="ingest", join_keys=[{"name": "id", "dtype": "int64"}])
    response = browser(owner).get("/features/entities/ingest/")
    assert response.status_code == 200 and b"<code>id</code> int64" in response.content


def test_feature_pages_link_to_entities(owner, view):
    client = browser(owner)
    assert b'href="/features/entities/"' in client.get("/features/").content
    assert b'href="/features/entities/customer/"' in client.get("/features/").content
    assert b'href="/features/entities/customer/"' in client.get(f"/features/{view.name}/").content


def test_new_view_form_preselects_the_entity_it_was_opened_from(owner, customer):
    services.entity_create(actor=owner, name="account", join_keys=[{"name": "account_id", "dtype": "int64"}])
    response = browser(owner).get("/features/new/?entity=customer")
    assert b'<option value="customer" selected>' in response.content
