"""The API's edges: one trailing-slash rule (308 to the canonical spelling) and JSON for every error."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import api_client_for, page_client_for


@pytest.mark.django_db
def test_other_slash_spelling_answers_308_to_the_canonical_one(owner):
    api = api_client_for(owner)
    response = api.get("/api/v1/me/?x=1")
    assert response.status_code == 308 and response["Location"] == "/api/v1/me?x=1"
    response = api.post("/api/v1/models", {"name": "m"}, format="json")
    assert response.status_code == 308 and response["Location"] == "/api/v1/models/"
    assert api.get("/api/v1/me").status_code == 200


@pytest.mark.django_db
def test_unknown_api_paths_answer_json_404(owner):
    response = api_client_for(owner).get("/api/v1/no-such-thing/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    response = Client().get("/api/v2/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"


@pytest.mark.django_db
def test_missing_pages_show_the_portals_404_not_a_debug_page(owner, settings):
    assert settings.DEBUG is False
    response = page_client_for(owner).get("/models/no-such-model/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "DEBUG = True" not in body and "Back to the dashboard" in body


def test_debug_is_off_unless_set(monkeypatch):
    import subprocess
    import sys

    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='portal.settings'; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    env = {"PATH": "/usr/bin:/bin", "PORTAL_ENV": "development"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, "PORTAL_DEBUG": "1"}, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.django_db
def test_csrf_failure_on_the_api_is_json(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post("/api/v1/models/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403 and "detail" in response.json()


@pytest.mark.django_db
def test_a_views_own_404_is_not_turned_into_a_redirect(owner, stranger):
    from apps.catalog import services

    services.model_create(actor=owner, name="hidden-model", description="", tags=[])
    api = api_client_for(stranger)
    assert api.get("/api/v1/models/hidden-model/").status_code == 404
    assert api.get("/api/v1/models/hidden-model/card").status_code == 404
    # a path both spellings of which resolve (a <path:> converter) answers the view's 404, no loop
    response = api.get("/api/v1/runs/999999/artifacts/notes.txt")
    assert response.status_code == 404
