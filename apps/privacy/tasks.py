"""Celery task of data-subject requests: loads by id and calls one service (which sets no actor of
its own: the certificate names who asked, and every audit entry is theirs)."""

from __future__ import annotations

from celery import shared_task

from apps.core.audit import acting_as
from apps.privacy import services
from apps.privacy.models import ErasureCertificate


@shared_task(name="privacy.erase", acks_late=True)
def erase(certificate_id: int) -> dict:
    if not isinstance(certificate_id, int):
        raise ValueError("erase takes an ErasureCertificate id")
    requested_by = ErasureCertificate.objects.select_related("requested_by").get(pk=certificate_id).requested_by
    with acting_as(requested_by):
        certificate = services.erasure_run(certificate_id=certificate_id)
    return {"certificate": certificate.pk, "state": certificate.state}
