"""Queued erasures: the key waits encrypted (salted) in the vault, the job runs once however often
its message comes, a lost message is sent again, and a failed job says why and forgets the key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.models import AuditEntry, VaultBlob
from apps.privacy import recovery, services, stores, tasks
from apps.privacy.models import ErasureCertificate
from tests.privacy.conftest import SUBJECT


@pytest.mark.django_db
def test_a_lost_message_is_sent_again_and_a_duplicate_delivery_does_nothing(
    store, admin_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        certificate = services.erasure_request(actor=admin_user, key=SUBJECT)
    assert len(sent) == 1
    blob = VaultBlob.objects.get(pk=certificate.key_blob_id)
    with services.vault.storage().open(blob.storage_key, "rb") as sealed:
        assert SUBJECT.encode() not in sealed.read()
    with django_capture_on_commit_callbacks(execute=False) as resent:
        assert recovery.recover() == {"requeued": 0}  # too young to be lost
        ErasureCertificate.objects.filter(pk=certificate.pk).update(created_at=timezone.now() - timedelta(minutes=5))
        assert recovery.recover() == {"requeued": 1}
    assert len(resent) == 1
    with django_capture_on_commit_callbacks(execute=True):
        first = tasks.erase(certificate.pk)
        again = tasks.erase(certificate.pk)
    assert first == again == {"certificate": certificate.pk, "state": "succeeded"}
    assert AuditEntry.objects.filter(additional_data__event="subject.erased").count() == 1
    assert recovery.recover() == {"requeued": 0}


@pytest.mark.django_db
def test_a_failing_job_is_recorded_audited_and_forgets_the_key(
    store, admin_user, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        certificate = services.erasure_request(actor=admin_user, key=SUBJECT)

    def broken(subject):
        raise OSError("disk full")

    monkeypatch.setattr(stores, "prediction_erase", broken)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.erase(certificate.pk)["state"] == "failed"
    certificate.refresh_from_db()
    assert certificate.error == "OSError: disk full" and certificate.key_blob is None
    assert certificate.counts["offline"]["removed"] == 2  # what went before the failure is certified
    entry = AuditEntry.objects.get(pk=certificate.audit_entry_id)
    assert entry.additional_data["event"] == "subject.erase_failed" and entry.actor == admin_user
