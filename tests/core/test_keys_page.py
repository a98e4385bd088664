"""The key ring page and API (issue 17): platform admins see key ids and what each key protects
(never a key), and rotate an embedded ring after a fresh second factor, as a job on the default
queue whose audit entry names the admin. Everyone else gets 404 (pages) or 403 (tokens without
the `admin` scope). The autouse `_keyring_restored` fixture puts the ring back after each test."""

from __future__ import annotations

import base64
import io
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import token_create
from apps.core import tasks, vault
from apps.core.crypto import KeyRing
from apps.core.models import AuditEntry, KeyRotation, VaultBlob
from tests.accounts.otp_helpers import age_second_factor, enrolled, fresh_code, signed_in_with_code
from tests.conftest import api_client_for, page_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_tasks(monkeypatch):
    """Celery messages the services send (after commit), recorded instead of sent."""
    sent: list[tuple[str, list, str]] = []
    monkeypatch.setattr(
        "apps.core.dispatch.celery_app.send_task",
        lambda name, args=(), **options: sent.append((name, list(args), options.get("queue"))),
    )
    return sent


@pytest.fixture
def enforced(settings):
    settings.PORTAL_2FA_ENFORCED = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.PORTAL_STEPUP_MAX_AGE_S = 300


def blobs(n: int) -> list[tuple[VaultBlob, bytes]]:
    made = []
    for i in range(n):
        payload = f"payload {i} ".encode() * 50
        made.append((vault.blob_store(io.BytesIO(payload), purpose="test.bin"), payload))
    return made


def key_texts() -> list[str]:
    """The base64 master keys of the ring as it is now (the text a leak would show)."""
    ring = vault.keyring()
    return [base64.b64encode(ring.key(kid)).decode() for kid in ring.kids]


def row(html: str, kid: str) -> str:
    match = re.search(rf'<tr[^>]*data-kid="{re.escape(kid)}".*?</tr>', html, re.S)
    assert match, f"no row for key {kid}"
    return match.group(0)


def cells(row_html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)]


# --- who sees it -----------------------------------------------------------------------------


def test_non_admins_and_strangers_get_404(owner, stranger, auditor, sent_tasks):
    for user in (owner, stranger, auditor):
        client = page_client_for(user)
        assert client.get("/keys/").status_code == 404
        assert client.post("/keys/rotate", {"retire": "on"}).status_code == 404
        assert client.get("/api/v1/keys/").status_code == 404  # a session caller: no scope, not an admin
        assert client.post("/api/v1/keys/rotate", {}).status_code == 404
        assert 'href="/keys/"' not in client.get("/").content.decode()  # not in their navigation
    assert Client().get("/keys/")["Location"].startswith("/accounts/login/")
    assert not KeyRotation.objects.exists() and not sent_tasks


def test_the_page_lists_key_ids_with_counts_and_no_key_material(admin_user):
    old = vault.keyring().active_kid
    blobs(2)
    vault._write_ring_file(vault.keyring_path(), vault.keyring().with_key("pagek2"))  # a new active key
    blobs(1)
    response = page_client_for(admin_user).get("/keys/")
    html = response.content.decode()
    assert response.status_code == 200
    hashed = {kid: AuditEntry.objects.filter(hash_kid=kid).count() for kid in (old, "pagek2")}
    old_row, new_row = cells(row(html, old)), cells(row(html, "pagek2"))
    assert old_row[0] == old and old_row[1] == "retired from use" and old_row[2] == "2"
    assert new_row[0] == "pagek2" and new_row[1] == "active" and new_row[2] == "1"
    summary = {k["kid"]: k for k in response.context["summary"]["keys"]}
    assert summary[old]["audit_entries"] == hashed[old] > 0 and summary[old]["needed"]
    assert summary["pagek2"]["active"] and not summary[old]["active"]
    assert "Embedded" in html and 'data-role="rotate-form"' in html
    assert 'href="/keys/"' in page_client_for(admin_user).get("/").content.decode()  # the admin's navigation
    for text in key_texts():
        assert text not in html
        assert text[:16] not in html


def test_a_configured_ring_shows_the_procedure_instead_of_a_button(admin_user, settings, sent_tasks):
    settings.VAULT_KEYRING = KeyRing.generate("ops1").with_key("ops2").to_spec()
    client = page_client_for(admin_user)
    html = client.get("/keys/").content.decode()
    assert 'data-role="rotate-form"' not in html and 'id="rotate-configured"' in html
    assert "put it <strong>first</strong> in <code>VAULT_KEYRING</code>" in html
    assert [k for k in ("ops1", "ops2") if f'data-kid="{k}"' in html] == ["ops1", "ops2"]
    assert all(text not in html for text in key_texts())
    refused = client.post("/keys/rotate", {}, follow=True)
    assert "Not started: The key ring comes from the VAULT_KEYRING setting" in refused.content.decode()
    api = api_client_for(admin_user).post("/api/v1/keys/rotate", {}, format="json")
    assert api.status_code == 409 and "VAULT_KEYRING" in api.json()["detail"]
    assert not KeyRotation.objects.exists() and not sent_tasks


# --- rotating from the page --------------------------------------------------------------------


def test_rotation_asks_for_a_code_then_queues_the_job_and_a_second_click_is_refused(
    admin_user, enforced, sent_tasks, django_capture_on_commit_callbacks
):
    device, _ = enrolled(admin_user)
    client = signed_in_with_code(admin_user, device)
    age_second_factor(client, 301)

    asked = client.post("/keys/rotate", {"retire": "on"})
    html = asked.content.decode()
    assert asked.status_code == 403 and 'data-role="step-up-form"' in html and 'action="/keys/rotate"' in html
    assert 'name="retire" value="on"' in html and "rotate the vault master key" in html
    assert "Key rotations need a code" in html and "Confirm and rotate the keys" in html and "decision" not in html
    assert not KeyRotation.objects.exists() and not sent_tasks

    wrong = client.post("/keys/rotate", {"retire": "on", "otp": "000001"})
    assert wrong.status_code == 403 and b"was not accepted" in wrong.content and not KeyRotation.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        with_code = client.post("/keys/rotate", {"retire": "on", "otp": fresh_code(device)})
    assert with_code.status_code == 302 and with_code["Location"] == "/keys/"
    rotation = KeyRotation.objects.get()
    assert rotation.requested_by == admin_user and rotation.retire and rotation.state == "queued" and rotation.live
    assert sent_tasks == [("core.keys_rotate", [rotation.pk], "default")]
    assert AuditEntry.objects.filter(
        additional_data__event="2fa.step_up", additional_data__action="keys.rotate", actor=admin_user
    ).exists()
    assert AuditEntry.objects.filter(additional_data__event="vault.keys_rotate_requested", actor=admin_user).exists()

    page = client.get("/keys/").content.decode()
    assert "<progress" in page and 'hx-trigger="every 2s"' in page and 'data-role="rotate-form"' not in page
    again = client.post("/keys/rotate", {}, follow=True)  # within the step-up window: no code asked
    assert "Not started: A key rotation is already queued" in again.content.decode()
    assert KeyRotation.objects.count() == 1 and len(sent_tasks) == 1


def test_the_job_rewraps_every_blob_under_a_new_key_as_the_admin(admin_user, sent_tasks):
    made = blobs(3)
    old = vault.keyring().active_kid
    client = page_client_for(admin_user)
    assert client.post("/keys/rotate", {}).status_code == 302  # step-up not enforced: queued at once
    rotation = KeyRotation.objects.get()

    result = tasks.keys_rotate(rotation.pk)  # what the worker runs

    rotation.refresh_from_db()
    new = vault.keyring().active_kid
    assert result == {"rotation": rotation.pk, "state": "succeeded", "active_kid": new}
    assert new != old and old in vault.keyring().kids
    assert (rotation.previous_kid, rotation.active_kid, rotation.done, rotation.total) == (old, new, 3, 3)
    assert not rotation.live and rotation.percent == 100 and rotation.report["rewrapped"] == 3
    for blob, payload in made:
        blob.refresh_from_db()
        assert blob.kid == new and vault.blob_read(blob) == payload
    entry = AuditEntry.objects.filter(additional_data__event="vault.keys_rotate").get()
    assert entry.actor == admin_user and entry.additional_data["active_kid"] == new
    assert tasks.keys_rotate(rotation.pk)["state"] == "succeeded"  # a second delivery does nothing
    assert AuditEntry.objects.filter(additional_data__event="vault.keys_rotate").count() == 1
    html = client.get("/keys/").content.decode()
    assert 'hx-trigger="every 2s"' not in html and 'data-role="rotate-form"' in html
    assert cells(row(html, new))[1:3] == ["active", "3"]


def test_retire_drops_only_keys_nothing_needs(admin_user, sent_tasks):
    ring = vault.keyring().with_key("spare1", activate=False)  # never used: nothing needs it
    vault._write_ring_file(vault.keyring_path(), ring)
    old = ring.active_kid
    blobs(1)
    rotation = KeyRotation.objects.create(requested_by=admin_user, retire=True)
    tasks.keys_rotate(rotation.pk)
    rotation.refresh_from_db()
    kids = vault.keyring().kids
    assert rotation.state == "succeeded" and "spare1" in rotation.report["retired_kids"]
    assert "spare1" not in kids and old in kids  # the audit trail is hashed under the old key
    assert AuditEntry.objects.filter(additional_data__event="vault.keys_retired", actor=admin_user).exists()


def test_a_stale_rotation_does_not_block_forever(admin_user, sent_tasks):
    stuck = KeyRotation.objects.create(requested_by=admin_user)
    KeyRotation.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(minutes=16))
    assert page_client_for(admin_user).post("/keys/rotate", {}).status_code == 302
    stuck.refresh_from_db()
    assert stuck.state == "failed" and not stuck.live and "No worker reported" in stuck.error
    assert KeyRotation.objects.filter(live=True).count() == 1
    assert tasks.keys_rotate(stuck.pk)["state"] == "failed"  # its late message does nothing


# --- the API ----------------------------------------------------------------------------------


def test_api_rotation_needs_the_admin_scope_and_a_code(
    admin_user, enforced, sent_tasks, django_capture_on_commit_callbacks
):
    device, _ = enrolled(admin_user)
    api = api_client_for(admin_user)  # with the `admin` scope
    no_code = api.post("/api/v1/keys/rotate", {"retire": False}, format="json")
    assert no_code.status_code == 403 and no_code.json()["code"] == "step_up_required"
    assert "X-OTP" in no_code.json()["detail"]

    _, key = token_create(user=admin_user, name="no admin scope", scopes=["read", "write"], expires_days=1)
    no_scope = APIClient()
    no_scope.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    refused = no_scope.post("/api/v1/keys/rotate", {}, format="json", HTTP_X_OTP=fresh_code(device))
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert no_scope.get("/api/v1/keys/").status_code == 403
    assert not KeyRotation.objects.exists() and not sent_tasks

    with django_capture_on_commit_callbacks(execute=True):
        done = api.post("/api/v1/keys/rotate", {"retire": True}, format="json", HTTP_X_OTP=fresh_code(device))
    assert done.status_code == 202
    body = done.json()
    rotation = KeyRotation.objects.get()
    assert body["id"] == rotation.pk and body["state"] == "queued" and body["retire"] is True
    assert body["requested_by"] == admin_user.username
    assert sent_tasks == [("core.keys_rotate", [rotation.pk], "default")]
    busy = api.post("/api/v1/keys/rotate", {}, format="json", HTTP_X_OTP=fresh_code(device))
    assert busy.status_code == 409 and "already queued" in busy.json()["detail"]

    tasks.keys_rotate(rotation.pk)
    polled = api.get(f"/api/v1/keys/rotations/{rotation.pk}/").json()
    assert polled["state"] == "succeeded" and polled["active_kid"] == vault.keyring().active_kid
    assert AuditEntry.objects.get(additional_data__event="vault.keys_rotate").actor == admin_user


def test_api_summary_names_keys_and_counts_never_keys(admin_user):
    blobs(2)
    response = api_client_for(admin_user).get("/api/v1/keys/")
    assert response.status_code == 200
    body = response.json()
    ring = vault.keyring()
    assert body["source"] == "embedded" and body["rotatable"] and body["active_kid"] == ring.active_kid
    assert [k["kid"] for k in body["keys"]] == list(ring.kids)
    active = next(k for k in body["keys"] if k["active"])
    assert active["blobs"] == 2 and active["audit_entries"] == AuditEntry.objects.filter(hash_kid=active["kid"]).count()
    assert body["rotation"] is None and body["missing"] == []
    text = response.content.decode()
    assert all(key not in text for key in key_texts())
