"""Sign-in hardening routes (issue 17): two-factor pages (every signed-in user manages their own;
the code step and enrolment also serve a pending sign-in, so anonymous callers are sent to the
sign-in page), and the platform admins' lock-out list and unlock (anyone else: 404)."""

from __future__ import annotations

from tests.access.matrix import LOGIN, AccessMatrix, page_collection

ADMIN_ONLY = dict(admin=200, owner=404, viewer=404, editor=404, team=404, stranger=404, auditor=404, anon=LOGIN)


class TestTwoFactorPageAccess(AccessMatrix):
    rows = {
        ("GET", "/accounts/2fa/"): page_collection(),
        ("GET", "/accounts/2fa/verify"): page_collection(),
        # a wrong code: the form again with its error, for the caller's own account only
        ("POST", "/accounts/2fa/verify"): page_collection(body={"code": "not-a-code"}),
        ("GET", "/accounts/2fa/enrol"): page_collection(),
        ("POST", "/accounts/2fa/enrol"): page_collection(body={"code": "abc"}),
        # nothing to show (codes are shown once, right after they are made): back to the settings
        ("GET", "/accounts/2fa/recovery-codes"): page_collection(302),
        # no authenticator yet: told to set one up first (a redirect with a message)
        ("POST", "/accounts/2fa/recovery-codes/new"): page_collection(302),
        # changing one's factors needs a fresh code first: a redirect to the code step
        ("POST", "/accounts/2fa/remove"): page_collection(302),
    }


class TestLockoutPageAccess(AccessMatrix):
    rows = {
        ("GET", "/accounts/lockouts/"): ADMIN_ONLY,
        ("POST", "/accounts/lockouts/unlock"): dict(ADMIN_ONLY, admin=302, body={"username": "nobody"}),
    }
