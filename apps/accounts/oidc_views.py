"""The two SSO routes under /accounts/oidc/: start the sign-in at the provider, and its callback.

Both are open to anonymous callers (they are how one signs in), like the sign-in page. Whatever
goes wrong (SSO not configured, the provider down or refusing, a used or foreign state, an
account the portal refuses) ends on the sign-in page with a message saying what to do, never an
error page. The callback marks the session `auth_method = "oidc"` (shown to the user and in the audit trail).
The portal's own two-factor rules still apply after an SSO sign-in: approvers and platform admins
pass a portal TOTP code too, because the step-up before each approval decision is the portal's.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.shortcuts import redirect, resolve_url
from django.urls import path
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.accounts import oidc

log = logging.getLogger(__name__)


def _back_to_sign_in(request, message: str):
    messages.error(request, message)
    return redirect(resolve_url(settings.LOGIN_URL))


def _not_configured(request):
    return _back_to_sign_in(request, "Single sign-on is not set up on this portal. Sign in with your password.")


class SsoStartView(OIDCAuthenticationRequestView):
    http_method_names = ["get"]

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the parent reads the endpoints here; they are found per request

    def get(self, request):
        if not settings.OIDC_ENABLED:
            return _not_configured(request)
        try:
            self.OIDC_OP_AUTH_ENDPOINT = oidc.provider().authorization_endpoint
        except oidc.SsoFailure as exc:
            return _back_to_sign_in(request, str(exc))
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    http_method_names = ["get"]

    def get(self, request):
        if not settings.OIDC_ENABLED:
            return _not_configured(request)
        try:
            return super().get(request)
        except SuspiciousOperation:  # a state this session never issued (or already used)
            log.warning("oidc callback with an unknown state")
            return _back_to_sign_in(request, STALE)
        except oidc.SsoFailure as exc:
            return _back_to_sign_in(request, str(exc))

    def login_success(self):
        response = super().login_success()
        self.request.session[oidc.SESSION_AUTH_METHOD] = "oidc"
        return response

    def login_failure(self):
        error = self.request.GET.get("error")
        if error:  # the provider's own answer; its free text is not echoed (anyone can craft the link)
            code = re.sub(r"[^a-z_]", "", error.lower())[:40] or "error"
            message = f"{oidc.provider_name()} did not sign you in ({code}). Try again, or sign in with your password."
        elif "oidc_states" not in self.request.session:
            message = STALE
        else:
            message = f"Signing in with {oidc.provider_name()} did not succeed. Try again."
        log.info("oidc sign-in failed: %s", error or "no user")
        return _back_to_sign_in(self.request, message)


STALE = (
    "That sign-in link has expired or was already used (or was started in another browser). "
    "Start again with the single sign-on button."
)

urlpatterns = [
    path("authenticate/", login_not_required(SsoStartView.as_view()), name="oidc_authentication_init"),
    path("callback/", login_not_required(SsoCallbackView.as_view()), name="oidc_authentication_callback"),
]
