"""subject_access finds every copy of a key's data; subject_erase removes every copy (and only
those), certifies it in the audit trail without the key, and is safe to repeat."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pytest

from apps.core.errors import NotFound
from apps.core.models import AuditEntry
from apps.features import offline, training_sets
from apps.features import services as features
from apps.features.models import Partition, TrainingSet
from apps.privacy import services
from apps.privacy.models import ErasureCertificate
from apps.serving.ids import pseudonymise_key
from apps.serving.models import Feedback, PredictionLog
from tests.privacy.conftest import PEOPLE, SUBJECT

OTHERS = [p for p in PEOPLE if p != SUBJECT]


def online_statuses(owner) -> list[str]:
    body = features.online_read(actor=owner, features=["person-stats:balance"], entities={"person_id": list(PEOPLE)})
    return body["results"]["person-stats:balance"]["statuses"]


def audit_text() -> str:
    return json.dumps([[e.additional_data, e.changes, e.object_repr] for e in AuditEntry.objects.all()], default=str)


@pytest.mark.django_db
def test_access_report_finds_every_place_with_counts(store, admin_user):
    report = services.subject_access(actor=admin_user, key=SUBJECT)
    assert report["entities"] == ["person"]
    files = report["offline"]["files"]
    assert report["offline"]["rows"] == 2 and len(files) == 2
    assert {f["path"] for f in files} == set(Partition.objects.values_list("path", flat=True))
    assert all(f["rows"] == 1 and f["view"] == "person-stats" for f in files)
    assert report["online"]["keys"] == 1 and report["online"]["entries"][0]["view"] == "person-stats"
    assert report["training_sets"] == {
        "rows": 1, "sets": [{"id": store["training_set"].pk, "name": "people", "path": store["training_set"].path, "rows": 1}]
    }  # fmt: skip
    assert report["prediction_logs"] == {"rows": 2, "endpoints": [{"endpoint": "fraud", "rows": 2}]}
    assert report["feedback"] == {"rows": 1}
    assert report["not_indexed"] == ["run artifacts: not indexed by entity key"]
    entry = AuditEntry.objects.filter(additional_data__event="subject.accessed").get()
    assert entry.actor == admin_user and SUBJECT not in audit_text()
    assert entry.additional_data["key_digest"] == services.subject_digest(SUBJECT)


@pytest.mark.django_db
def test_a_key_nobody_has_is_reported_empty_and_a_bad_entity_is_a_field_error(store, admin_user):
    report = services.subject_access(actor=admin_user, key="nobody-0000")
    assert (report["offline"]["rows"], report["online"]["keys"], report["training_sets"]["rows"]) == (0, 0, 0)
    assert report["prediction_logs"]["rows"] == 0
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as caught:
        services.subject_access(actor=admin_user, key=SUBJECT, entity="no-such-entity")
    assert "entity" in caught.value.message_dict


@pytest.mark.django_db
def test_non_admins_cannot_ask(store, owner):
    with pytest.raises(NotFound):
        services.subject_access(actor=owner, key=SUBJECT)
    with pytest.raises(NotFound):
        services.subject_erase(actor=owner, key=SUBJECT)
    assert ErasureCertificate.objects.count() == 0 and online_statuses(owner) == ["present"] * 3


@pytest.mark.django_db
def test_erase_removes_every_copy_and_keeps_the_others(
    store, owner, admin_user, feature_store, django_capture_on_commit_callbacks
):
    view, ts = store["view"], store["training_set"]
    old_files = [feature_store / p for p in Partition.objects.values_list("path", flat=True)]
    old_set_file = feature_store / ts.path
    calls = []
    with django_capture_on_commit_callbacks(execute=True):
        certificate = services.subject_erase(actor=admin_user, key=SUBJECT, progress=lambda *a: calls.append(a))
    assert certificate.state == "succeeded"
    # offline: read back through the store's reader; the key's rows are gone, the others intact
    table = offline.read_view(view)
    assert sorted(table.column("person_id").to_pylist()) == sorted(OTHERS * 2)
    assert (
        table.filter(pc.equal(table.column("person_id"), PEOPLE[0])).column("email").to_pylist()
        == [f"{PEOPLE[0]}@example.com"] * 2
    )
    assert not any(f.exists() for f in old_files) and Partition.objects.count() == 2
    view.refresh_from_db()
    assert view.row_count == 4
    # online
    assert online_statuses(owner) == ["present", "missing", "present"]
    # training set: digest-checked by the loader, the key's row gone
    ts = TrainingSet.objects.get(pk=ts.pk)
    loaded = training_sets.training_set_load(ts)
    assert sorted(loaded.column("person_id").to_pylist()) == sorted(OTHERS) and ts.row_count == 2
    assert not old_set_file.exists()
    # prediction logs and their feedback
    assert not PredictionLog.objects.filter(key_hash=pseudonymise_key(SUBJECT)).exists()
    assert PredictionLog.objects.filter(key_hash=pseudonymise_key(PEOPLE[2])).count() == 1
    assert Feedback.objects.count() == 1
    # the certificate
    assert certificate.counts["offline"] == {"removed": 2, "files_rewritten": 2, "files_deleted": 0}
    assert certificate.counts["online"] == {"removed": 1}
    assert certificate.counts["training_sets"] == {"removed": 1, "files_rewritten": 1}
    assert certificate.counts["prediction_logs"] == {"removed": 2} and certificate.counts["feedback"] == {"removed": 1}
    assert len(certificate.files) == 3
    assert all(f["sha256_before"] != f["sha256_after"] for f in certificate.files)
    set_entry = next(f for f in certificate.files if f["store"] == "training_sets")
    assert set_entry["sha256_after"] == ts.digest
    entry = AuditEntry.objects.get(pk=certificate.audit_entry_id)
    assert entry.additional_data["event"] == "subject.erased" and entry.actor == admin_user
    assert entry.additional_data["counts"] == certificate.counts
    assert entry.additional_data["document_sha256"] == services.document_digest(
        services.certificate_document(certificate)
    )
    assert SUBJECT not in audit_text()
    assert SUBJECT not in json.dumps(services.certificate_document(certificate))
    stores_seen = {store for store, _, _ in calls}
    assert {"offline", "online", "training_sets", "prediction_logs"} <= stores_seen
    assert ("offline", 2, 2) in calls


@pytest.mark.django_db
def test_a_second_erase_finds_nothing_and_certifies_zero(store, owner, admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.subject_erase(actor=admin_user, key=SUBJECT)
        second = services.subject_erase(actor=admin_user, key=SUBJECT)
    assert first.pk != second.pk and second.state == "succeeded"
    assert all(c["removed"] == 0 for c in second.counts.values()) and second.files == []
    events = AuditEntry.objects.filter(additional_data__event="subject.erased").order_by("pk")
    assert [e.additional_data["certificate"] for e in events] == [first.pk, second.pk]
    assert online_statuses(owner) == ["present", "missing", "present"]
    report = services.subject_access(actor=admin_user, key=SUBJECT)
    assert report["certificates"] == [second.pk, first.pk]


@pytest.mark.django_db
def test_a_file_left_with_no_rows_is_deleted(
    store, owner, admin_user, feature_store, django_capture_on_commit_callbacks
):
    from tests.privacy.conftest import person_rows

    features.feature_view_ingest(view=store["view"], actor=owner, data=person_rows([SUBJECT], days=(7,)))
    alone = Partition.objects.order_by("-pk").first()
    with django_capture_on_commit_callbacks(execute=True):
        certificate = services.subject_erase(actor=admin_user, key=SUBJECT, entity="person")
    assert certificate.counts["offline"] == {"removed": 3, "files_rewritten": 2, "files_deleted": 1}
    assert not Partition.objects.filter(pk=alone.pk).exists() and not (feature_store / alone.path).exists()
    assert any(f["sha256_after"] is None for f in certificate.files)
