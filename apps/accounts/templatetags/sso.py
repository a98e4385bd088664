"""`{% sso_sign_in next %}`: the "Sign in with <provider>" button, only where single sign-on is set up."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.urls import reverse

register = template.Library()


@register.inclusion_tag("accounts/sso_sign_in.html")
def sso_sign_in(next_url: str = "") -> dict:
    if not settings.OIDC_ENABLED:
        return {"sso_url": ""}
    url = reverse("accounts:oidc_authentication_init")
    return {
        "sso_url": f"{url}?{urlencode({'next': next_url})}" if next_url else url,
        "sso_provider": settings.OIDC_PROVIDER_NAME,
    }
