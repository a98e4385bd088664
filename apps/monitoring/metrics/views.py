"""`GET /metrics`: Prometheus text for platform admins (session) and `metrics` tokens.

Who may scrape: a signed-in platform admin, or a token with the `metrics` scope whose user is a
platform admin (a scope never widens its user's rights, shared/API.md; the scope narrows an
admin's key to scraping, which is what a Prometheus server should hold). No credentials, or a bad,
expired or revoked token: 401; anyone else: 403. The token is read as on the lean paths
(apps.accounts.tokens.find_token, `Token` or `Bearer`); the decision is apps.core.permissions'.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from apps.accounts.tokens import find_token
from apps.core.permissions import is_platform_admin, token_allows
from apps.monitoring.metrics.collectors import Platform
from apps.monitoring.metrics.text import timings_text

SCOPE = "metrics"
KEYWORDS = ("token", "bearer")
# The scrape-time gauges' own registry: only portal_ names (no default process/GC collectors),
# nothing described at registration (that would query the database at import).
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(Platform())


def exposition() -> bytes:
    """The whole scrape, as Prometheus text: the in-process counters and histograms, then the gauges."""
    return timings_text().encode() + generate_latest(REGISTRY)


def _plain(status: int, text: str, **headers) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _unauthorised(text: str) -> HttpResponse:
    return _plain(401, text, WWW_Authenticate="Token")


@login_not_required  # answers 401 itself (API.md), rather than a redirect to the sign-in page
@require_GET
def metrics_view(request):
    header = request.headers.get("Authorization", "")
    if header:
        keyword, _, key = header.partition(" ")
        if keyword.lower() not in KEYWORDS or not key.strip():
            return _unauthorised("Send 'Authorization: Token <key>' with a key that has the 'metrics' scope.")
        token = find_token(key.strip())
        if token is None:
            return _unauthorised("Invalid, expired or revoked token.")
        user = token.user
        if not token_allows(token, SCOPE):
            return _plain(403, "This token lacks the 'metrics' scope.")
    else:
        user = request.user
        if not user.is_authenticated:
            return _unauthorised("Sign in as a platform admin or send a token with the 'metrics' scope.")
    if not is_platform_admin(user):
        return _plain(403, "Only platform admins (or their 'metrics' tokens) may read the platform metrics.")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
