"""Reads of data-subject requests, and their one access decision: platform admins only.

Everyone else gets NotFound (404) on every page, API route and certificate, as a stranger does
for any object: the feature's existence is nobody else's business. The decision itself is the
decision point's (`apps.core.permissions.is_platform_admin`).
"""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core import permissions
from apps.core.errors import NotFound
from apps.privacy.models import ErasureCertificate

NOT_FOUND = "No data-subject request matches the given query."


def require_admin(user) -> None:
    """Raise NotFound unless `user` is a platform admin."""
    if not permissions.is_platform_admin(user):
        raise NotFound(NOT_FOUND)


def erasures_visible(user) -> QuerySet[ErasureCertificate]:
    """Every erasure, newest first (platform admins)."""
    require_admin(user)
    return ErasureCertificate.objects.select_related("requested_by").order_by("-created_at", "-pk")


def erasure_for(user, pk) -> ErasureCertificate:
    require_admin(user)
    try:
        found = ErasureCertificate.objects.select_related("requested_by").filter(pk=int(pk)).first()
    except (TypeError, ValueError, OverflowError):
        found = None
    if found is None:
        raise NotFound(NOT_FOUND)
    return found
