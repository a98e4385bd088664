"""Notifications: `notify` writes rows for active recipients and, after commit only, pushes them to
the user's socket group and e-mails them; the API and page show a user only their own."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core import mail
from django.db import transaction
from rest_framework.test import APIClient

from apps.notifications import selectors, services
from apps.notifications.models import Notification
from tests.conftest import api_client_for, make_user, page_client_for

pytestmark = pytest.mark.django_db


def _notify(users, **extra):
    return services.notify(recipients=users, kind="promotion.requested", title="Decide on credit-risk v2", **extra)


def test_notify_writes_one_row_per_active_recipient_and_sends_after_commit(
    owner, collaborator, django_capture_on_commit_callbacks
):
    collaborator.email = "col@example.com"
    collaborator.save()
    owner.email = ""  # no address: no e-mail, the row and the push still happen
    owner.save()
    gone = make_user("gone", is_active=False)
    with mock.patch("apps.notifications.services.send_now") as push:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            rows = _notify(
                [owner, collaborator, collaborator, gone, None],
                body="Two checks passed.",
                url="/approvals/1/",
                obj=owner,
            )
        assert push.call_count == 0 and not mail.outbox  # nothing leaves before commit
        for callback in callbacks:
            callback()
    assert {n.recipient for n in rows} == {owner, collaborator}
    assert all(n.pk for n in rows)
    assert (rows[0].object_type, rows[0].object_id) == (f"{owner._meta.app_label}.user", str(owner.pk))
    groups = sorted(call.args[0] for call in push.call_args_list)
    assert groups == sorted([f"user.{owner.pk}", f"user.{collaborator.pk}"])
    message = push.call_args_list[0].args[1]
    assert message["type"] == "notification" and message["title"] == "Decide on credit-risk v2"
    assert message["unread"] == 1 and message["url"] == "/approvals/1/"
    assert [m.to for m in mail.outbox] == [["col@example.com"]]
    assert "Two checks passed." in mail.outbox[0].body and "/approvals/1/" in mail.outbox[0].body


def test_rolled_back_notify_sends_nothing(owner):
    with (
        mock.patch("apps.notifications.services.send_now") as push,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _notify([owner])
        raise RuntimeError("the promotion failed")
    assert push.call_count == 0
    assert not Notification.objects.exists() and not mail.outbox


def test_failed_email_does_not_fail_the_caller(owner, django_capture_on_commit_callbacks):
    owner.email = "owner@example.com"
    owner.save()
    with (
        mock.patch("apps.notifications.services.send_mail", side_effect=OSError("smtp down")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        rows = _notify([owner])
    assert len(rows) == 1 and Notification.objects.count() == 1


def test_email_false_sends_none(owner, django_capture_on_commit_callbacks):
    owner.email = "owner@example.com"
    owner.save()
    with django_capture_on_commit_callbacks(execute=True):
        _notify([owner], email=False)
    assert not mail.outbox


def test_api_lists_only_own_newest_first_and_filters_unread(owner, collaborator):
    first = _notify([owner])[0]
    _notify([collaborator])
    second = services.notify(recipients=[owner], kind="promotion.decided", title="Approved")[0]
    services.notification_read(actor=owner, notification=first)
    client = api_client_for(owner)
    body = client.get("/api/v1/notifications/").json()
    assert [n["id"] for n in body["results"]] == [second.pk, first.pk]
    assert set(body["results"][0]) >= {"id", "kind", "title", "url", "object", "created_at", "read_at"}
    assert [n["id"] for n in client.get("/api/v1/notifications/?unread=true").json()["results"]] == [second.pk]
    assert [n["id"] for n in client.get("/api/v1/notifications/?unread=false").json()["results"]] == [first.pk]
    assert client.get("/api/v1/notifications/?unread=maybe").status_code == 400


def test_api_read_and_read_all(owner, collaborator):
    mine = _notify([owner])[0]
    _notify([owner])
    theirs = _notify([collaborator])[0]
    client = api_client_for(owner)
    assert client.post(f"/api/v1/notifications/{mine.pk}/read").status_code == 204
    assert client.post(f"/api/v1/notifications/{mine.pk}/read").status_code == 204  # again: no change
    assert client.post(f"/api/v1/notifications/{theirs.pk}/read").status_code == 404
    assert client.post("/api/v1/notifications/abc/read").status_code == 404
    assert client.post("/api/v1/notifications/read-all").json() == {"marked": 1}
    assert selectors.unread_count(owner) == 0 and selectors.unread_count(collaborator) == 1
    assert api_client_for(owner, scopes=("read",)).post("/api/v1/notifications/read-all").status_code == 403
    assert APIClient().get("/api/v1/notifications/").status_code == 401


def test_admin_does_not_see_other_users_notifications(owner, admin_user):
    _notify([owner])
    assert api_client_for(admin_user).get("/api/v1/notifications/").json()["count"] == 0


def test_page_lists_opens_and_marks_all_read(owner, collaborator):
    note = _notify([owner], url="/models/")[0]
    other = _notify([collaborator])[0]
    client = page_client_for(owner)
    page = client.get("/notifications/")
    assert page.status_code == 200 and b"Decide on credit-risk v2" in page.content
    assert b'data-role="bell-count">1<' in page.content  # the bell in the header
    response = client.post(f"/notifications/{note.pk}/open/")
    assert response.status_code == 302 and response["Location"] == "/models/"
    note.refresh_from_db()
    assert note.read_at is not None
    assert client.post(f"/notifications/{other.pk}/open/").status_code == 404
    _notify([owner], url="https://evil.example/")
    evil = Notification.objects.filter(recipient=owner).first()
    assert client.post(f"/notifications/{evil.pk}/open/")["Location"] == "/notifications/"
    assert client.post("/notifications/read-all/").status_code == 302
    assert selectors.unread_count(owner) == 0
