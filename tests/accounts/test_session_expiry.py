"""Session expiry (issue 17): SESSION_COOKIE_AGE is the absolute limit; a session unused for
PORTAL_SESSION_IDLE_S ends, and the sign-in page says why."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from apps.accounts.middleware import SESSION_LAST_SEEN, SESSION_STARTED
from tests.accounts.otp_helpers import sign_in

pytestmark = pytest.mark.django_db


def last_seen(client, seconds_ago: float) -> None:
    session = client.session
    session[SESSION_LAST_SEEN] = time.time() - seconds_ago
    session.save()


def test_an_idle_session_ends(owner, settings):
    settings.PORTAL_SESSION_IDLE_S = 30 * 60
    client = Client()
    assert sign_in(client, "owner").status_code == 302
    assert client.get("/models/").status_code == 200
    last_seen(client, 29 * 60)  # active within the limit: still signed in, and the clock restarts
    assert client.get("/models/").status_code == 200
    assert time.time() - client.session[SESSION_LAST_SEEN] < 5
    last_seen(client, 31 * 60)
    response = client.get("/models/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    page = client.get(response["Location"])
    assert b'data-role="idle-ended"' in page.content and b"after 30 minutes without activity" in page.content
    assert client.get("/models/").status_code == 302  # signed out for good, not just once
    assert client.get("/api/v1/me").status_code == 401


def test_the_idle_limit_comes_from_the_setting(owner, settings):
    settings.PORTAL_SESSION_IDLE_S = 120
    client = Client()
    client.force_login(owner)
    last_seen(client, 150)
    assert client.get("/models/").status_code == 302


def test_a_session_ends_at_the_absolute_limit_however_active(owner, settings):
    settings.SESSION_COOKIE_AGE = 8 * 3600
    client = Client()
    client.force_login(owner)
    session = client.session
    session[SESSION_STARTED] = time.time() - 8 * 3600 - 5
    session.save()
    last_seen(client, 10)  # active a moment ago
    response = client.get("/models/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert b"sessions last at most 8 hours" in client.get(response["Location"]).content
