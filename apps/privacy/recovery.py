"""Queued erasures whose Celery message was lost (broker restart) are sent again (apps/core/recovery.py).

Sending twice is harmless: `erasure_run` claims a queued erasure once and ignores later deliveries.
An erasure left `running` by a lost worker stays so (its key is still in the vault): run the
erasure again for the same key, which finishes the work and certifies it.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.core.dispatch import enqueue
from apps.privacy.models import ErasureCertificate
from apps.privacy.services import QUEUE, TASK

GRACE = timedelta(minutes=2)


def recover() -> dict:
    stale = ErasureCertificate.objects.filter(
        state=ErasureCertificate.State.QUEUED, created_at__lt=timezone.now() - GRACE, key_blob__isnull=False
    )
    ids = list(stale.values_list("pk", flat=True))
    for pk in ids:
        enqueue(TASK, args=[pk], queue=QUEUE)
    return {"requeued": len(ids)}
