"""Sharing a feature view from its page: users, teams, viewer/editor, the view_pii grant, audit."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from apps.core.models import AuditEntry
from apps.core.permissions import share
from apps.features.models import FeatureView, FeatureViewGroupObjectPermission, FeatureViewUserObjectPermission
from tests.conftest import make_user, object_permission_rows
from tests.conftest import page_client_for as login

pytestmark = pytest.mark.django_db


def url(view, action="") -> str:
    return f"/features/{view.name}/{action + '/' if action else ''}"


def perm_rows() -> list[tuple]:
    return object_permission_rows(FeatureViewUserObjectPermission, FeatureViewGroupObjectPermission)


def fresh(view) -> FeatureView:
    return FeatureView.objects.get(pk=view.pk)  # guardian caches permissions on user objects: re-read


def test_owner_shares_with_a_user_who_then_sees_the_page_until_unshared(view, owner, collaborator):
    client = login(owner)
    page = client.get(url(view))
    assert page.status_code == 200 and b'id="sharing"' in page.content and b"Not shared with anyone yet" in page.content
    assert login(collaborator).get(url(view)).status_code == 404

    r = client.post(url(view, "share"), {"user": "collaborator", "role": "viewer"}, follow=True)
    assert b"Shared with collaborator as viewer" in r.content
    assert b'data-user="collaborator"' in r.content
    guest = login(collaborator)
    page = guest.get(url(view))
    assert page.status_code == 200 and b'id="sharing"' not in page.content  # viewers see no sharing card
    assert guest.get(url(view, "ingest")).status_code == 403

    r = client.post(url(view, "unshare"), {"user": "collaborator"}, follow=True)
    assert b"Removed access for collaborator" in r.content
    assert login(collaborator).get(url(view)).status_code == 404


def test_owner_shares_with_a_team_as_editor(view, owner, team):
    analyst = make_user("analyst")
    team.group.user_set.add(analyst)
    assert login(analyst).get(url(view)).status_code == 404
    r = login(owner).post(url(view, "share"), {"team": team.pk, "role": "editor"}, follow=True)
    assert b"Shared with Risk Analytics as editor" in r.content and b'data-team="risk"' in r.content
    member = login(analyst)
    page = member.get(url(view))
    assert page.status_code == 200 and b'id="sharing"' in page.content  # editors may manage sharing
    assert member.get(url(view, "ingest")).status_code == 200

    login(owner).post(url(view, "unshare"), {"team": "risk"})
    assert login(analyst).get(url(view)).status_code == 404
    assert not FeatureViewGroupObjectPermission.objects.exists()


def test_view_pii_grant_is_given_listed_audited_and_revoked(view, owner, collaborator):
    client = login(owner)
    assert b"PII access" in client.get(url(view)).content  # the owner holds view_pii, so may grant it
    r = client.post(url(view, "share"), {"user": "collaborator", "role": "viewer", "view_pii": "on"}, follow=True)
    assert b"Shared with collaborator as viewer + PII access" in r.content
    assert collaborator.has_perm("view_pii", fresh(view))
    assert b"you see PII unmasked" in login(collaborator).get(url(view)).content

    # guardian rows are audited by auditlog, with the acting user; plus one explicit share event
    ctype = ContentType.objects.get_for_model(FeatureViewUserObjectPermission)
    row = FeatureViewUserObjectPermission.objects.get(user=collaborator, permission__codename="view_pii")
    entry = AuditEntry.objects.get(content_type=ctype, object_pk=str(row.pk), action=LogEntry.Action.CREATE)
    assert entry.actor == owner
    event = AuditEntry.objects.get(additional_data__event="featureview.share")
    assert event.actor == owner and event.additional_data["grants"] == ["view_pii"]
    assert event.additional_data["user"] == "collaborator" and event.additional_data["role"] == "viewer"

    # re-sharing without the box takes PII access away again (the form sets the level)
    client.post(url(view, "share"), {"user": "collaborator", "role": "viewer"})
    assert not collaborator.has_perm("view_pii", fresh(view))
    assert AuditEntry.objects.filter(content_type=ctype, action=LogEntry.Action.DELETE, actor=owner).exists()

    client.post(url(view, "share"), {"user": "collaborator", "role": "editor", "view_pii": "on"})
    client.post(url(view, "unshare"), {"user": "collaborator"})
    assert not FeatureViewUserObjectPermission.objects.filter(user=collaborator).exists()  # unshare drops PII too
    assert AuditEntry.objects.filter(additional_data__event="featureview.unshare", actor=owner).count() == 1


def test_editor_without_pii_cannot_grant_it(view, owner, collaborator):
    share(view, role="editor", user=collaborator)
    editor = login(collaborator)
    page = editor.get(url(view))
    assert b'id="sharing"' in page.content and b'name="view_pii"' not in page.content
    before = perm_rows()
    r = editor.post(url(view, "share"), {"user": "collaborator", "role": "editor", "view_pii": "on"})
    assert r.status_code == 400 and b"so you cannot grant it" in r.content
    assert perm_rows() == before and not collaborator.has_perm("view_pii", fresh(view))


def test_viewer_cannot_share_or_unshare(view, owner, collaborator):
    share(view, role="viewer", user=collaborator)
    guest = login(collaborator)
    before = perm_rows()
    assert guest.post(url(view, "share"), {"user": "collaborator", "role": "editor"}).status_code == 403
    assert guest.post(url(view, "unshare"), {"user": "collaborator"}).status_code == 403
    assert perm_rows() == before


def test_stranger_gets_404_on_share_endpoints(view, stranger):
    client = login(stranger)
    before = perm_rows()
    assert client.post(url(view, "share"), {"user": "stranger", "role": "editor"}).status_code == 404
    assert client.post(url(view, "unshare"), {"user": "owner"}).status_code == 404
    assert client.get(url(view, "share")).status_code == 405  # POST only, before any lookup
    assert perm_rows() == before


@pytest.mark.parametrize(
    "data, message",
    [
        ({"user": "nobody", "role": "viewer"}, b"No active user &#x27;nobody&#x27;."),
        ({"user": "collaborator", "role": "admin"}, b"Choose viewer or editor."),
        ({"role": "viewer"}, b"Choose a user or a team (one of them)."),
        ({"user": "collaborator", "team": "999999", "role": "viewer"}, b"Select a valid choice"),
        ({"user": "owner", "role": "viewer"}, b"The owner already has full access."),
    ],
)
def test_invalid_input_shows_a_form_error_and_changes_nothing(view, owner, collaborator, data, message):
    client = login(owner)
    before, audits = perm_rows(), AuditEntry.objects.count()
    r = client.post(url(view, "share"), data)
    assert r.status_code == 400 and message in r.content, r.content.decode()[-3000:]
    assert b'id="share-form"' in r.content and (b"is-invalid" in r.content or b"alert-danger" in r.content)
    assert perm_rows() == before and AuditEntry.objects.count() == audits


def test_share_needs_post_and_csrf(view, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get(url(view, "share")).status_code == 405
    assert client.post(url(view, "share"), {"user": "collaborator", "role": "viewer"}).status_code == 403
