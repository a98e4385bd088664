"""Sign-in lock-out (django-axes, issue 17): N failures lock a username out from one address with a
message that says what to do, a platform admin unlocks it (audited), and failed sign-ins reach the
audit trail aggregated, so an anonymous caller cannot grow it without bound."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client

from apps.core.models import AuditEntry
from tests.accounts.otp_helpers import PASSWORD
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.PORTAL_LOCKOUT_COOLOFF_MIN = 15
    settings.AXES_COOLOFF_TIME = 0.25
    settings.PORTAL_LOGIN_AUDIT_USERNAMES_PER_IP = 4


def attempt(client, username, password="wrong-password", ip="10.1.2.3"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def failed_entries(username=None):
    entries = AuditEntry.objects.filter(additional_data__event="login.failed")
    return entries.filter(object_repr=username) if username else entries


def test_lock_out_after_the_limit_with_a_message_that_says_what_to_do(owner):
    client = Client()
    for _ in range(2):
        response = attempt(client, "owner")
        assert response.status_code == 200 and b'data-role="lockout"' not in response.content
    locked = attempt(client, "owner")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert 'data-role="lockout"' in text
    assert "too many failed sign-ins" in text.lower() and "try again in 15 minutes" in text
    assert "ask a platform admin to unlock" in text
    # the right password is refused too while locked out, and nobody is signed in
    assert attempt(client, "owner", PASSWORD).status_code == 429
    assert client.get("/accounts/profile/").status_code == 302
    # per username and address: the same account from another address, another account here, still sign in
    assert attempt(Client(), "owner", PASSWORD, ip="10.9.9.9").status_code == 302
    make_user("colleague")
    assert attempt(Client(), "colleague", PASSWORD).status_code == 302


def test_a_platform_admin_unlocks_and_the_unlock_is_audited(owner, admin_user, viewer):
    for _ in range(3):
        attempt(Client(), "owner")
    assert attempt(Client(), "owner", PASSWORD).status_code == 429

    stranger = Client()
    stranger.force_login(viewer)
    assert stranger.get("/accounts/lockouts/").status_code == 404
    assert stranger.post("/accounts/lockouts/unlock", {"username": "owner"}).status_code == 404
    assert AccessAttempt.objects.filter(username="owner").exists()

    admin = Client()
    admin.force_login(admin_user)
    page = admin.get("/accounts/lockouts/")
    assert page.status_code == 200 and page.content.decode().count('data-role="lockout"') == 1
    assert b"10.1.2.3" in page.content
    assert admin.post("/accounts/lockouts/unlock", {"username": "owner"}).status_code == 302
    entry = AuditEntry.objects.get(additional_data__event="login.unlock")
    assert entry.actor == admin_user and entry.additional_data["username"] == "owner"
    assert entry.additional_data["addresses"] == ["10.1.2.3"]
    assert attempt(Client(), "owner", PASSWORD).status_code == 302


def test_failed_sign_ins_are_audited_once_per_username_and_address_per_window(owner):
    client = Client()
    for _ in range(12):
        attempt(client, "owner")
    entries = failed_entries("owner")
    assert entries.count() == 1
    first = entries.get()
    assert first.remote_addr == "10.1.2.3" and first.actor is None and first.additional_data["failures"] == 1
    assert AuditEntry.objects.filter(additional_data__event="login.locked_out", object_repr="owner").count() == 1
    # another address is another entry
    attempt(client, "owner", ip="10.4.4.4")
    assert failed_entries("owner").count() == 2
    # after the window, the next failure is recorded again, carrying the count so far
    AuditEntry.objects.filter(pk=first.pk).update(timestamp=first.timestamp.replace(year=2000))
    attempt(client, "owner")
    newest = failed_entries("owner").filter(remote_addr="10.1.2.3").order_by("-pk").first()
    assert newest.pk != first.pk and newest.additional_data["failures"] == 13


def test_one_address_trying_many_usernames_adds_a_bounded_number_of_entries(db):
    before = AuditEntry.objects.count()
    client = Client()
    for i in range(30):
        for _ in range(2):
            attempt(client, f"nobody{i}")
    entries = failed_entries().filter(remote_addr="10.1.2.3")
    assert entries.count() == 5  # 4 usernames named, then one entry for the rest of the window
    assert entries.filter(object_repr="*").count() == 1
    assert AuditEntry.objects.count() == before + 5  # nothing else grew (no row audit of axes' counters)


def test_lock_out_entries_are_in_the_chain_and_it_verifies(owner):
    from apps.core.audit import verify_chain

    for _ in range(6):
        attempt(Client(), "owner")
    assert verify_chain().ok
