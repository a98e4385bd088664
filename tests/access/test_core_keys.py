"""The key ring (issue 17): platform admins only. Pages: everyone else gets 404, anonymous callers
the sign-in answer. API: the views need a token with the `admin` scope, which only platform admins
can hold, so every other persona's token is refused with 403 before anything is looked up (a
non-admin's session gets 404: tests/core/test_keys_page.py). Two-factor is not enforced in the
matrix, so the rotations here need no code (step-up: tests/core/test_keys_page.py); nothing is
rotated, as each request's queued job is rolled back with its savepoint before any commit."""

from __future__ import annotations

from tests.access.matrix import LOGIN, AccessMatrix

OTHERS = ("owner", "viewer", "editor", "team", "stranger", "auditor")


def page(ok: int) -> dict:
    return dict(admin=ok, anon=LOGIN) | dict.fromkeys(OTHERS, 404)


def api(ok: int) -> dict:
    return dict(admin=ok, anon=401, no_scope_token=403) | dict.fromkeys(OTHERS, 403)


def rotation(owner, team) -> dict:
    """One finished rotation started by the platform admin."""
    from django.contrib.auth import get_user_model

    from apps.core.models import KeyRotation

    admin = get_user_model().objects.get(username="platformadmin")
    made = KeyRotation.objects.create(requested_by=admin, state="succeeded", live=False, report={"rewrapped": 0})
    return {"pk": made.pk, "share": []}


class TestKeyRingPageAccess(AccessMatrix):
    make = staticmethod(rotation)
    rows = {
        ("GET", "/keys/"): page(200),
        ("POST", "/keys/rotate"): page(302) | {"body": {"retire": "on"}},
    }


class TestKeyRingApiAccess(AccessMatrix):
    make = staticmethod(rotation)
    rows = {
        ("GET", "/api/v1/keys/"): api(200),
        ("POST", "/api/v1/keys/rotate"): api(202) | {"body": {"retire": False}},
        ("GET", "/api/v1/keys/rotations/{pk}/"): api(200),
    }
