"""Data-subject requests: platform admins only. Everyone else gets 404 on every page, API route
and certificate (the feature is nobody else's business); anonymous callers the sign-in answer."""

from __future__ import annotations

from tests.access.matrix import LOGIN, AccessMatrix

HIDDEN = dict(owner=404, viewer=404, editor=404, team=404, stranger=404, auditor=404)
E = "/privacy/erasures/{pk}"
A = "/api/v1/privacy/erasures/{pk}"


def page(ok: int) -> dict:
    return dict(admin=ok, anon=LOGIN) | HIDDEN


def api(ok: int) -> dict:
    return dict(admin=ok, anon=401, no_scope_token=403) | HIDDEN


def erasure(owner, team) -> dict:
    """One finished erasure certificate requested by the platform admin (no key is kept)."""
    from django.contrib.auth import get_user_model

    from apps.privacy.models import ErasureCertificate
    from apps.privacy.services import subject_digest

    admin = get_user_model().objects.get(username="platformadmin")
    made = ErasureCertificate.objects.create(
        key_digest=subject_digest("matrix-key"), requested_by=admin, state="succeeded", progress=1.0,
        counts={"offline": {"removed": 0}}, document_sha256="0" * 64,
    )  # fmt: skip
    return {"pk": made.pk, "share": []}


class TestPrivacyPageAccess(AccessMatrix):
    make = staticmethod(erasure)
    rows = {
        ("GET", "/privacy/"): page(200),
        ("POST", "/privacy/"): page(200) | {"body": {"action": "access", "access-key": "nobody-1"}},
        ("GET", f"{E}/"): page(200),
        ("GET", f"{E}/certificate.json"): page(200),
    }


class TestPrivacyApiAccess(AccessMatrix):
    make = staticmethod(erasure)
    rows = {
        ("POST", "/api/v1/privacy/access"): api(200) | {"body": {"key": "nobody-1"}},
        ("GET", "/api/v1/privacy/erasures/"): api(200),
        ("POST", "/api/v1/privacy/erasures/"): api(202) | {"body": {"key": "nobody-1"}},
        ("GET", f"{A}/"): api(200),
        ("GET", f"{A}/certificate"): api(200),
    }
