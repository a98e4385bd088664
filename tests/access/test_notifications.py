"""Notifications: each user reads and marks only their own (the owner's notification here); a
notification of someone else reads as missing (404), for platform admins too."""

from __future__ import annotations

from tests.access.matrix import AccessMatrix, api_collection, page_collection

EVERYONE_ELSE_404 = dict(viewer=404, editor=404, team=404, stranger=404, admin=404, auditor=404)


def build(owner, team):
    from apps.notifications.services import notify

    note = notify(
        recipients=[owner], kind="job.finished", title="Training job 7 finished", url="/models/", email=False
    )[0]
    return {"pk": note.pk}


class TestNotificationAccess(AccessMatrix):
    make = staticmethod(build)
    rows = {
        ("GET", "/api/v1/notifications/"): api_collection(auditor=200),
        ("POST", "/api/v1/notifications/read-all"): api_collection(auditor=200),
        ("POST", "/api/v1/notifications/{pk}/read"): dict(owner=204, anon=401, no_scope_token=403) | EVERYONE_ELSE_404,
        ("GET", "/notifications/"): page_collection(auditor=200),
        ("POST", "/notifications/read-all/"): page_collection(302, auditor=302),
        ("POST", "/notifications/{pk}/open/"): dict(owner=302, anon="login") | EVERYONE_ELSE_404,
    }
