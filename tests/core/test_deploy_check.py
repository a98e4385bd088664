"""Production mode passes Django's deployment checklist (`manage.py check --deploy`) with nothing
but the secrets production requires, and its transport settings follow the environment (issue 17)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
pytestmark = pytest.mark.slow


def production_env(tmp_path: Path, **extra: str) -> dict:
    """The minimal environment of PORTAL_ENV=production: a strong SECRET_KEY and the vault key ring."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "SECURE_", "DJANGO_SETTINGS"))}
    env |= {
        "PORTAL_ENV": "production",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": secrets.token_urlsafe(64),
        "VAULT_KEYRING": "k1:" + base64.b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "portal.example.org",
    }
    return env | extra


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_check_deploy_is_clean_in_production(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_without_hsts(tmp_path):
    """The check above can fail: switching HSTS off is reported (security.W004)."""
    env = production_env(tmp_path, SECURE_HSTS_SECONDS="0")
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0 and "security.W004" in result.stdout + result.stderr


SHOW = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({name: getattr(s, name) for name in (
    "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "X_FRAME_OPTIONS",
    "SECURE_CONTENT_TYPE_NOSNIFF", "SECURE_REFERRER_POLICY")}))
"""


def production_settings(tmp_path: Path, **extra: str) -> dict:
    env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="portal.settings", **extra)
    result = run(["-c", SHOW], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_transport_defaults(tmp_path):
    values = production_settings(tmp_path)
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SESSION_COOKIE_SECURE"] is values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] == 365 * 86400
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is values["SECURE_HSTS_PRELOAD"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY" and values["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"


def test_gateway_terminating_tls_switches_redirect_and_proxy_header(tmp_path):
    values = production_settings(
        tmp_path,
        SECURE_SSL_REDIRECT="0",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Scheme",
        SECURE_HSTS_PRELOAD="0",
    )
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_SCHEME", "https"]
    assert values["SECURE_HSTS_PRELOAD"] is False
    assert production_settings(tmp_path, SECURE_PROXY_SSL_HEADER="none")["SECURE_PROXY_SSL_HEADER"] is None


FORM_ACTION = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps(s.CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"]))
"""


def test_form_action_adds_the_sso_provider_only_when_configured(tmp_path):
    base = {k: v for k, v in production_env(tmp_path).items() if not k.startswith("OIDC_")}
    base |= {"PORTAL_ENV": "development", "DJANGO_SETTINGS_MODULE": "portal.settings"}
    plain = run(["-c", FORM_ACTION], base)
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout.strip().splitlines()[-1]) == ["'self'"]
    sso = base | {
        "OIDC_ISSUER": "https://idp.example.org/realms/portal",
        "OIDC_RP_CLIENT_ID": "portal",
        "OIDC_RP_CLIENT_SECRET": "s3cret",
    }
    configured = run(["-c", FORM_ACTION], sso)
    assert configured.returncode == 0, configured.stderr
    assert json.loads(configured.stdout.strip().splitlines()[-1]) == ["'self'", "https://idp.example.org"]
