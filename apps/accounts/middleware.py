"""Session rules that run on every request, right after Django's AuthenticationMiddleware.

- `SessionIdleTimeoutMiddleware`: a session unused for PORTAL_SESSION_IDLE_S ends (signed out),
  and any session ends SESSION_COOKIE_AGE after sign-in (the cookie's own expiry moves whenever
  the session is saved, so the sign-in time is kept and checked). The last-seen time is written
  at most once a minute, so an active session is not saved on every request.
- `TwoFactorMiddleware`: a signed-in session that has not passed a second factor although its
  user must have one (a required role), or has enrolled one, may only reach the sign-in, sign-out
  and two-factor pages until it does. The sign-in page never creates such a session (it keeps
  the user pending until the code is given); the Django admin's own sign-in form, single sign-on
  or a session made before enforcement can, and this is the net under them. Token callers of
  the API have no session: step-up applies to them per action (apps/accounts/stepup.py).
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse

from apps.accounts import twofactor

SESSION_LAST_SEEN = "portal_seen"
SESSION_STARTED = "portal_started"
SESSION_ENDED = "portal_session_ended"  # why the last session ended, for the sign-in page
LAST_SEEN_RESOLUTION_S = 60
TWO_FACTOR_OPEN_PREFIXES = (
    "/accounts/login/",
    "/accounts/logout/",
    "/accounts/2fa/",
    "/static/",
    "/healthz",
    "/favicon.ico",
)


class SessionIdleTimeoutMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY in session:
            now = time.time()
            seen = session.get(SESSION_LAST_SEEN)
            started = session.setdefault(SESSION_STARTED, now)
            if now - float(started) > settings.SESSION_COOKIE_AGE:
                logout(request)  # saving the session moves its cookie's expiry; the sign-in time does not
                request.session[SESSION_ENDED] = "You were signed out: sessions last at most " + _hours(
                    settings.SESSION_COOKIE_AGE
                )
            elif seen is not None and now - float(seen) > settings.PORTAL_SESSION_IDLE_S:
                logout(request)  # a new, empty session; the sign-in page says why
                minutes = int(settings.PORTAL_SESSION_IDLE_S // 60)
                request.session[SESSION_ENDED] = f"You were signed out after {minutes} minutes without activity"
            elif seen is None or now - float(seen) >= LAST_SEEN_RESOLUTION_S:
                session[SESSION_LAST_SEEN] = now
        return self.get_response(request)


def _hours(seconds: int) -> str:
    hours = seconds / 3600
    return f"{hours:g} hour{'' if hours == 1 else 's'}"


class TwoFactorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        redirect_to = self._detour(request)
        if redirect_to is None:
            return self.get_response(request)
        if request.path.startswith("/api/"):
            return JsonResponse(
                {
                    "detail": "Your session has not passed two-factor sign-in; finish it in the browser first.",
                    "code": "two_factor_required",
                },
                status=403,
            )
        return HttpResponseRedirect(f"{redirect_to}?{urlencode({'next': request.get_full_path()})}")

    @staticmethod
    def _detour(request) -> str | None:
        """Where an unverified session must go first, or None to let the request through."""
        session = getattr(request, "session", None)
        if session is None or SESSION_KEY not in session or twofactor.SESSION_VERIFIED_AT in session:
            return None
        if request.path.startswith(TWO_FACTOR_OPEN_PREFIXES):
            return None
        user = request.user
        if not user.is_authenticated:
            return None
        if twofactor.two_factor_required(user):
            return reverse("accounts:2fa-verify") if twofactor.has_device(user) else reverse("accounts:2fa-enrol")
        if session.get(twofactor.SESSION_NO_DEVICE):
            return None
        if twofactor.has_device(user):
            return reverse("accounts:2fa-verify")
        session[twofactor.SESSION_NO_DEVICE] = True  # asked once per session, not per request
        return None
