import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from apps.accounts.services import team_create
from apps.core.audit import audit_event, verify_chain
from apps.core.models import AuditEntry
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db


def test_changes_are_audited_with_their_actor(owner):
    from apps.core.audit import acting_as

    with acting_as(owner):
        team = team_create(name="Fraud", slug="fraud")
    entry = AuditEntry.objects.filter(object_pk=str(team.pk), content_type__model="team").get()
    assert entry.actor == owner
    assert entry.action == AuditEntry.Action.CREATE


def test_chain_verifies_and_names_the_first_modified_entry(owner):
    for i in range(5):
        audit_event(actor=owner, event="test.event", data={"i": i})
    assert verify_chain().ok
    victim = AuditEntry.objects.order_by("id")[2]
    AuditEntry.objects.filter(pk=victim.pk).update(object_repr="forged")
    report = verify_chain()
    assert not report.ok and report.first_broken_id == victim.pk
    assert "modified" in report.reason
    with pytest.raises(CommandError, match=f"entry {victim.pk}"):
        call_command("audit_verify")


def test_chain_detects_a_deleted_entry(owner):
    for i in range(4):
        audit_event(actor=owner, event="test.event", data={"i": i})
    entries = list(AuditEntry.objects.order_by("id"))
    AuditEntry.objects.filter(pk=entries[1].pk)._raw_delete(using="default")
    report = verify_chain()
    assert not report.ok and report.first_broken_id == entries[2].pk


def test_entries_cannot_be_changed_or_deleted_through_the_model(owner):
    entry = audit_event(actor=owner, event="test.event")
    entry.object_repr = "changed"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()


def test_admin_cannot_edit_or_delete_audit_entries(admin_user):
    entry = audit_event(actor=admin_user, event="test.event")
    client = Client()
    client.force_login(admin_user)
    assert client.get(f"/admin/core/auditentry/{entry.pk}/delete/").status_code == 403
    response = client.post(f"/admin/core/auditentry/{entry.pk}/change/", {"object_repr": "x"})
    assert response.status_code in (403, 200)
    entry.refresh_from_db()
    assert entry.object_repr != "x"
    assert verify_chain().ok


def test_login_and_failed_login_are_audited(owner):
    client = Client()
    client.post("/accounts/login/", {"username": "owner", "password": "wrong-password"})  # axes needs the request
    assert AuditEntry.objects.filter(additional_data__event="login.failed", object_repr="owner").exists()
    client.post("/accounts/login/", {"username": "owner", "password": "correct-horse-battery-staple"})
    assert AuditEntry.objects.filter(additional_data__event="login", actor=owner).exists()


def test_audit_api_is_for_auditors_only(auditor, stranger):
    audit_event(actor=stranger, event="test.event")
    assert api_client_for(stranger).get("/api/v1/audit/").status_code == 403
    assert api_client_for(stranger).get("/api/v1/audit/verify").status_code == 403
    response = api_client_for(auditor).get("/api/v1/audit/", {"event": "test.event"})
    assert response.status_code == 200
    assert response.json()["count"] == 1
    verify = api_client_for(auditor).get("/api/v1/audit/verify").json()
    assert verify["ok"] is True and verify["checked"] >= 1


def test_audit_csv_export_and_bad_filter(auditor):
    audit_event(actor=auditor, event="test.event")
    client = api_client_for(auditor)
    response = client.get("/api/v1/audit/", {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0].startswith("id,timestamp,actor")
    assert "test.event" in body
    bad = client.get("/api/v1/audit/", {"since": "yesterday"})
    assert bad.status_code == 400 and "ISO date" in str(bad.json())


def test_audit_page(auditor, stranger):
    audit_event(actor=auditor, event="test.event")
    client = Client()
    client.force_login(auditor)
    page = client.get("/audit/", {"verify": "1"})
    assert page.status_code == 200 and b"chain is intact" in page.content
    client.force_login(stranger)
    assert client.get("/audit/").status_code == 403


def test_role_changes_are_audited(owner):
    from apps.core.audit import acting_as

    with acting_as(owner):
        group = Group.objects.create(name="temp-group")
    assert AuditEntry.objects.filter(content_type__model="group", object_pk=str(group.pk)).exists()
