"""The audit trail cannot be cut short or rewritten (issue 17): keyed entry hashes, signed
checkpoints outside the table, a refused flush, and the alert, page banner and /healthz state when
the chain breaks. Every test here breaks the trail the way an attacker with database access would."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import ProtectedError

from apps.core import audit_chain, audit_keys, vault
from apps.core.audit import audit_event
from apps.core.audit_chain import chain_checkpoint, chain_status, checkpoint_path, verify_chain
from apps.core.audit_keys import CANONICAL_FIELDS, GENESIS_HASH
from apps.core.models import AuditEntry
from apps.core.tasks import audit_verify as audit_verify_task
from apps.monitoring.models import Alert
from tests.conftest import page_client_for

pytestmark = pytest.mark.django_db


def _write(actor, n: int) -> list[AuditEntry]:
    return [audit_event(actor=actor, event="test.event", data={"i": i}) for i in range(n)]


def _anchor() -> dict:
    """A full verification, then a checkpoint of the head (what the hourly task does)."""
    report = verify_chain()
    assert report.ok, report
    return chain_checkpoint(report)


def _raw_delete(ids) -> None:
    AuditEntry.objects.filter(pk__in=list(ids))._raw_delete(using="default")


def _rechain_from(pk: int, mac) -> None:
    """Recompute every hash from entry `pk` on, as someone with write access to the table would."""
    prev = AuditEntry.objects.filter(pk__lt=pk).order_by("-id").values_list("entry_hash", flat=True).first()
    prev = prev or GENESIS_HASH
    for row in AuditEntry.objects.filter(pk__gte=pk).order_by("id").values_list(*CANONICAL_FIELDS):
        entry_hash = mac(prev, row)
        AuditEntry.objects.filter(pk=row[0]).update(prev_hash=prev, entry_hash=entry_hash)
        prev = entry_hash


def test_entries_are_keyed_and_name_their_key(owner):
    entry = _write(owner, 1)[0]
    entry.refresh_from_db()
    assert entry.hash_kid == vault.keyring().active_kid
    row = AuditEntry.objects.filter(pk=entry.pk).values_list(*CANONICAL_FIELDS).get()
    plain = hashlib.sha256(entry.prev_hash.encode() + audit_keys.canonical_content(row)).hexdigest()
    assert entry.entry_hash != plain  # not computable without the key
    assert entry.entry_hash == audit_keys.entry_mac(audit_keys.chain_key(entry.hash_kid)[1], entry.prev_hash, row)


def test_deleting_the_newest_entries_is_detected(owner):
    entries = _write(owner, 6)
    checkpoint = _anchor()
    assert checkpoint["seq"] == entries[-1].pk
    _raw_delete(e.pk for e in entries[-2:])  # the rest still chains perfectly
    report = verify_chain(alert=False)  # (an alert is audited too: it would write the next entries)
    assert not report.ok and report.check == "truncated"
    assert report.first_broken_id == entries[-1].pk and report.verified_through == entries[-3].pk
    with pytest.raises(CommandError, match="truncated"):
        call_command("audit_verify")


def test_cut_head_is_seen_by_the_cheap_check_without_a_checkpoint(owner):
    entries = _write(owner, 4)
    assert chain_status().ok  # the verified state now ends at the newest entry
    _raw_delete([entries[-1].pk])
    report = chain_status()
    assert not report.ok and report.check == "anchor" and report.first_broken_id == entries[-1].pk


def test_auditlogflush_refuses_and_the_trail_stays(owner):
    _write(owner, 3)
    before = AuditEntry.objects.count()
    assert get_commands()["auditlogflush"] == "apps.core.auditguard"  # ours, not django-auditlog's
    for options in (["--yes"], ["--yes", "--truncate"], ["--yes", "--before-date", "2100-01-01"]):
        with pytest.raises(CommandError, match="audit entries are never purged") as refused:
            call_command("auditlogflush", *options)
        assert refused.value.returncode != 0
    assert AuditEntry.objects.count() == before and verify_chain().ok


def test_orm_deletes_of_entries_are_refused(owner):
    entry = _write(owner, 1)[0]
    with pytest.raises(PermissionError, match="never purged"):
        AuditEntry.objects.all().delete()
    with pytest.raises(ProtectedError):  # remove_stale_contenttypes would cascade into the trail
        ContentType.objects.get_for_id(entry.content_type_id).delete()
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_a_raw_sql_flush_is_detected(owner):
    _write(owner, 3)
    _anchor()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEntry._meta.db_table}")  # noqa: S608  the model's own table
    report = verify_chain()
    assert not report.ok and report.check == "flushed"
    assert chain_status().status == "broken"


def test_an_edit_rechained_with_plain_sha256_is_detected(owner):
    entries = _write(owner, 5)
    victim = entries[1]
    AuditEntry.objects.filter(pk=victim.pk).update(object_repr="forged")
    _rechain_from(
        victim.pk, lambda prev, row: hashlib.sha256(prev.encode() + audit_keys.canonical_content(row)).hexdigest()
    )
    report = verify_chain()  # no checkpoint needed: the key is missing
    assert not report.ok and report.check == "hash" and report.first_broken_id == victim.pk


def test_a_rechain_with_the_right_key_is_caught_by_the_checkpoint(owner):
    entries = _write(owner, 5)
    _anchor()
    AuditEntry.objects.filter(pk=entries[1].pk).update(object_repr="forged")
    key = audit_keys.chain_key()[1]
    _rechain_from(entries[1].pk, lambda prev, row: audit_keys.entry_mac(key, prev, row))
    report = verify_chain()
    assert not report.ok and report.check == "checkpoint_mismatch" and report.first_broken_id == entries[-1].pk


def test_a_forged_checkpoint_line_is_detected(owner):
    _write(owner, 3)
    line = _anchor()
    forged = {**line, "seq": line["seq"] - 1}  # claims an earlier head: the signature no longer fits
    with checkpoint_path().open("a") as handle:
        handle.write(json.dumps(forged) + "\n")
    report = verify_chain()
    assert not report.ok and report.check == "checkpoint_signature" and "bad signature" in report.reason


def test_a_checkpoint_is_written_every_n_entries_after_commit(owner, settings, django_capture_on_commit_callbacks):
    settings.AUDIT_CHECKPOINT_EVERY = 3
    with django_capture_on_commit_callbacks(execute=True):
        entries = _write(owner, 8)
    lines = [json.loads(raw) for raw in checkpoint_path().read_text().splitlines()]
    ids = [e.pk for e in entries]
    assert [line["seq"] for line in lines] == [pk for pk in ids if pk % 3 == 0]
    first = AuditEntry.objects.get(pk=lines[0]["seq"])
    assert lines[0]["head"] == first.entry_hash
    assert lines[0]["count"] == AuditEntry.objects.filter(pk__lte=first.pk).count()
    assert verify_chain().last_checkpoint_seq == lines[-1]["seq"]


def test_master_key_rotation_keeps_verification_green(owner, settings):
    first = vault.keyring().with_key("audit1")  # the owner's creation is hashed under the embedded key
    settings.VAULT_KEYRING = first.to_spec()
    old = _write(owner, 3)
    _anchor()
    settings.VAULT_KEYRING = first.with_key("audit2").to_spec()  # new key first, the old one kept
    new = _write(owner, 3)
    assert {AuditEntry.objects.get(pk=e.pk).hash_kid for e in old} == {"audit1"}
    assert {AuditEntry.objects.get(pk=e.pk).hash_kid for e in new} == {"audit2"}
    assert verify_chain().ok
    _anchor()
    second = first.with_key("audit2")
    settings.VAULT_KEYRING = second.without("audit1").to_spec()
    report = verify_chain()  # dropping a key the trail still needs is reported, not silently accepted
    assert not report.ok and report.check == "key" and "'audit1' is not in the key ring" in report.reason


def test_embedded_key_retirement_keeps_keys_the_trail_needs(owner):
    _write(owner, 2)
    used = vault.keyring().active_kid
    vault.keys_rotate(generate=True)  # nothing in the vault: the old key is unused by blobs
    assert used not in vault.keys_retire_unused() and used in vault.keyring()
    assert verify_chain().ok


def test_the_hourly_task_anchors_the_head_and_alerts_on_a_break(owner):
    entries = _write(owner, 4)
    result = audit_verify_task()
    assert result["ok"] and result["mode"] == "full"
    line = json.loads(checkpoint_path().read_text().splitlines()[-1])
    assert line["seq"] == entries[-1].pk and line["head"] == AuditEntry.objects.get(pk=entries[-1].pk).entry_hash
    assert not Alert.objects.filter(kind=Alert.Kind.AUDIT_CHAIN).exists()
    more = _write(owner, 2)
    assert audit_verify_task()["mode"] == "incremental"  # the full walk ran within the day
    anchored = len(checkpoint_path().read_text().splitlines())
    assert anchored == 2
    _raw_delete([more[-1].pk])
    assert audit_verify_task()["check"] == "anchor"  # the hour's check: the verified head is gone
    # Known broken: a full walk each hour. The alert, audited itself, appended entries after the cut.
    assert audit_verify_task()["check"] == "checkpoint_mismatch"
    alert = Alert.objects.get(kind=Alert.Kind.AUDIT_CHAIN)
    assert alert.severity == Alert.Severity.CRITICAL and alert.count == 2 and f"entry {more[-1].pk}" in alert.title
    assert alert.object_url == "/audit/"
    assert len(checkpoint_path().read_text().splitlines()) == anchored  # a broken chain is never anchored


def test_healthz_reports_the_chain_and_stays_up(client, owner):
    entries = _write(owner, 3)
    body = client.get("/healthz").json()
    assert body["audit_chain"]["status"] == "ok" and body["degraded"] == []
    assert body["audit_chain"]["verified_through"] == entries[-1].pk
    AuditEntry.objects.filter(pk=entries[-1].pk).update(entry_hash="0" * 64)
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"  # liveness: still serving
    assert body["audit_chain"]["status"] == "broken" and body["degraded"] == ["audit_chain"]
    assert "forged" not in json.dumps(body["audit_chain"])  # no entry details for anonymous callers


def test_the_audit_page_shows_a_red_banner_naming_the_break(auditor, owner):
    entries = _write(owner, 4)
    client = page_client_for(auditor)
    page = client.get("/audit/").content.decode()
    assert "Hash chain verified through entry" in page and "audit-chain-broken" not in page
    AuditEntry.objects.filter(pk=entries[1].pk).update(object_repr="forged")
    page = client.get("/audit/", {"verify": "1"}).content.decode()
    assert 'id="audit-chain-broken"' in page and "alert-danger" in page
    assert f"entry #{entries[1].pk}" in page and audit_chain.CHECKS["hash"] in page.replace("&#x27;", "'")
    assert "failed its integrity check" in client.get("/audit/").content.decode()  # stays until it holds


def test_the_cheap_check_reads_only_new_entries(owner):
    _write(owner, 5)
    assert verify_chain().checked >= 5
    _write(owner, 2)
    report = chain_status()
    assert report.ok and report.mode == "incremental" and report.checked == 2


def test_the_migration_rechain_writes_a_checkpoint(owner, django_capture_on_commit_callbacks):
    entries = _write(owner, 3)
    AuditEntry.objects.update(prev_hash="", entry_hash="", hash_kid="")  # as before the keyed chain
    assert not verify_chain(alert=False).ok
    with django_capture_on_commit_callbacks(execute=True):
        assert audit_chain.rechain_for_migration(AuditEntry, "default") == AuditEntry.objects.count()
    line = json.loads(checkpoint_path().read_text().splitlines()[-1])
    assert line["note"] == "rechain:core.0004" and line["seq"] == entries[-1].pk
    after = chain_status()  # the re-chain left its verified state: nothing to walk again
    assert after.ok and after.checked == 0 and after.verified_through == entries[-1].pk
    assert after.last_checkpoint_seq == entries[-1].pk
    assert verify_chain().ok


def test_the_hourly_check_counts_what_it_verified_before(owner):
    entries = _write(owner, 5)
    assert chain_status().ok
    _raw_delete([entries[2].pk])  # the newest entry, which the cheap check looks at, is untouched
    report = chain_status(count=True)
    assert not report.ok and report.check == "anchor" and "entries up to entry" in report.reason


def test_a_long_backlog_is_verified_in_steps_and_reported_unverified(owner, settings):
    settings.AUDIT_INCREMENTAL_MAX_ROWS = 3
    entries = _write(owner, 4)
    first = chain_status()
    assert first.ok and first.status == "unverified" and first.pending > 0 and first.checked == 3
    while (report := chain_status()).status == "unverified":
        assert report.checked == 3 or report.pending == 0
    assert report.status == "ok" and report.verified_through == entries[-1].pk
