"""Sharing an experiment from its page: users and teams as viewer (view) or editor (view + change)."""

from __future__ import annotations

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from apps.core.models import AuditEntry
from apps.core.permissions import can, share
from apps.experiments.models import ExperimentGroupObjectPermission, ExperimentUserObjectPermission
from tests.conftest import make_user, object_permission_rows
from tests.conftest import page_client_for as login
from tests.experiments.factories import experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def exp(owner):
    return experiment(owner, description="churn model experiments")


def url(exp, action="") -> str:
    return f"/experiments/{exp.pk}/{action + '/' if action else ''}"


def experiment_actions(user, exp) -> set[str]:
    return {action for action in ("view", "change", "delete") if can(user, action, exp)}


def perm_rows() -> list[tuple]:
    return object_permission_rows(ExperimentUserObjectPermission, ExperimentGroupObjectPermission)


def test_owner_shares_with_a_user_who_then_sees_the_page_until_unshared(exp, owner, collaborator):
    client = login(owner)
    page = client.get(url(exp))
    assert page.status_code == 200 and b'id="sharing"' in page.content and b"Not shared with anyone yet" in page.content
    assert b'name="view_pii"' not in page.content  # no extra grants on experiments
    assert login(collaborator).get(url(exp)).status_code == 404

    r = client.post(url(exp, "share"), {"user": "collaborator", "role": "viewer"}, follow=True)
    assert b"Shared with collaborator as viewer" in r.content and b'data-user="collaborator"' in r.content
    page = login(collaborator).get(url(exp))
    assert page.status_code == 200 and b'id="sharing"' not in page.content  # viewers see no sharing card
    assert experiment_actions(collaborator, exp) == {"view"}

    client.post(url(exp, "share"), {"user": "collaborator", "role": "editor"})
    assert experiment_actions(collaborator, exp) == {"view", "change"}
    client.post(url(exp, "share"), {"user": "collaborator", "role": "viewer"})  # downgrade
    assert experiment_actions(collaborator, exp) == {"view"}

    r = client.post(url(exp, "unshare"), {"user": "collaborator"}, follow=True)
    assert b"Removed access for collaborator" in r.content
    assert login(collaborator).get(url(exp)).status_code == 404


def test_owner_shares_with_a_team_as_editor(exp, owner, team):
    analyst = make_user("analyst")
    team.group.user_set.add(analyst)
    assert login(analyst).get(url(exp)).status_code == 404
    r = login(owner).post(url(exp, "share"), {"team": team.pk, "role": "editor"}, follow=True)
    assert b"Shared with Risk Analytics as editor" in r.content and b'data-team="risk"' in r.content
    page = login(analyst).get(url(exp))
    assert page.status_code == 200 and b'id="sharing"' in page.content  # editors may manage sharing
    assert experiment_actions(analyst, exp) == {"view", "change"}

    login(owner).post(url(exp, "unshare"), {"team": "risk"})
    assert login(analyst).get(url(exp)).status_code == 404


def test_grants_are_audited_with_the_actor(exp, owner, collaborator):
    login(owner).post(url(exp, "share"), {"user": "collaborator", "role": "editor"})
    ctype = ContentType.objects.get_for_model(ExperimentUserObjectPermission)
    rows = ExperimentUserObjectPermission.objects.filter(user=collaborator)
    assert sorted(r.permission.codename for r in rows) == ["change_experiment", "view_experiment"]
    for row in rows:
        entry = AuditEntry.objects.get(content_type=ctype, object_pk=str(row.pk), action=LogEntry.Action.CREATE)
        assert entry.actor == owner
    event = AuditEntry.objects.get(additional_data__event="experiment.share")
    assert event.actor == owner and event.object_pk == str(exp.pk)
    assert event.additional_data | {} == {"event": "experiment.share", "user": "collaborator", "role": "editor",
                                          "grants": []}  # fmt: skip
    login(owner).post(url(exp, "unshare"), {"user": "collaborator"})
    assert AuditEntry.objects.filter(content_type=ctype, action=LogEntry.Action.DELETE, actor=owner).count() == 2
    assert AuditEntry.objects.filter(additional_data__event="experiment.unshare", actor=owner).count() == 1


def test_viewer_cannot_share_or_unshare(exp, collaborator):
    share(exp, role="viewer", user=collaborator)
    guest = login(collaborator)
    before = perm_rows()
    assert guest.post(url(exp, "share"), {"user": "collaborator", "role": "editor"}).status_code == 403
    assert guest.post(url(exp, "unshare"), {"user": "collaborator"}).status_code == 403
    assert perm_rows() == before


def test_stranger_gets_404_on_share_endpoints(exp, stranger):
    client = login(stranger)
    before = perm_rows()
    assert client.post(url(exp, "share"), {"user": "stranger", "role": "editor"}).status_code == 404
    assert client.post(url(exp, "unshare"), {"user": "owner"}).status_code == 404
    assert client.post("/experiments/999999/share/", {"user": "stranger", "role": "editor"}).status_code == 404
    assert perm_rows() == before


def test_owner_cannot_be_removed(exp, owner):
    r = login(owner).post(url(exp, "unshare"), {"user": "owner"}, follow=True)
    assert b"The owner always keeps access" in r.content
    assert experiment_actions(owner, exp) == {"view", "change", "delete"}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"user": "nobody", "role": "viewer"}, b"No active user &#x27;nobody&#x27;."),
        ({"user": "collaborator", "role": "owner"}, b"Choose viewer or editor."),
        ({"role": "editor"}, b"Choose a user or a team (one of them)."),
        ({"user": "owner", "role": "viewer"}, b"The owner already has full access."),
    ],
)
def test_invalid_input_shows_a_form_error_and_changes_nothing(exp, owner, collaborator, data, message):
    client = login(owner)
    before, audits = perm_rows(), AuditEntry.objects.count()
    r = client.post(url(exp, "share"), data)
    assert r.status_code == 400 and message in r.content
    assert b'id="share-form"' in r.content and (b"is-invalid" in r.content or b"alert-danger" in r.content)
    assert perm_rows() == before and AuditEntry.objects.count() == audits


def test_share_needs_post_and_csrf(exp, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get(url(exp, "share")).status_code == 405
    assert client.post(url(exp, "share"), {"user": "collaborator", "role": "viewer"}).status_code == 403
