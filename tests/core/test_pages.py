import base64
import subprocess
import sys

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_is_public_and_reports_parts(client):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert body["checks"]["channel_layer"]["status"] == "ok"
    assert "queues" in body["workers"]


@pytest.mark.parametrize("url", ["/", "/accounts/profile/", "/audit/"])
def test_pages_need_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_api_needs_credentials(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_login_page_and_dashboard(owner):
    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    bad = client.post("/accounts/login/", {"username": "owner", "password": "nope"})
    assert bad.status_code == 200 and b"alert-danger" in bad.content
    client.post("/accounts/login/", {"username": "owner", "password": "correct-horse-battery-staple"})
    home = client.get("/")
    assert home.status_code == 200 and b"Worker slots online" in home.content


def test_schema_and_docs_are_served_locally(owner):
    client = Client()
    client.force_login(owner)
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200 and b"/api/v1/me" in schema.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


def test_vendor_assets_and_plotly_are_served(client):
    for path in [
        "/static/vendor/bootstrap/bootstrap.min.css",
        "/static/vendor/htmx/htmx.min.js",
        "/static/plotly/plotly.min.js",
    ]:
        assert client.get(path).status_code == 200, path


def test_unknown_api_path_is_json_404(owner):
    client = Client()
    client.force_login(owner)
    response = client.get("/api/v1/does-not-exist/")
    assert response.status_code == 404 and response.json()["detail"]


def _settings_probe(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env={"PATH": "/usr/bin:/bin", "PORTAL_VAR_DIR": "/tmp/portal-prod-probe", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_without_secret_key():
    result = _settings_probe({"PORTAL_ENV": "production", "PORTAL_DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_passes_check_deploy(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("x7" * 20 + "abcdefghijklmnopqrstuvwxyz")
    result = _settings_probe(
        {
            "PORTAL_ENV": "production",
            "SECRET_KEY_FILE": str(secret_file),
            "ALLOWED_HOSTS": "portal.example.com",
            "VAULT_KEYRING": "k1:" + base64.b64encode(b"k" * 32).decode(),
        }
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_typed_setting_fails_fast():
    result = _settings_probe({"PORTAL_REDIS_PORT": "not-a-port"})
    assert result.returncode != 0 and "PORTAL_REDIS_PORT" in result.stderr


def test_production_refuses_without_vault_keys(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("x7" * 20 + "abcdefghijklmnopqrstuvwxyz")
    result = _settings_probe({"PORTAL_ENV": "production", "SECRET_KEY_FILE": str(secret_file)})
    assert result.returncode != 0 and "VAULT_KEYRING" in result.stderr
