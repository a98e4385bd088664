"""No anonymous reads of the API's description (issue 17): the OpenAPI schema and its two viewers
answer a signed-in user or a token with the `read` scope (as CI's schemathesis run uses), and
refuse everyone else without showing a path of the API."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db
ROUTES = ("/api/v1/schema/", "/api/v1/docs/", "/api/v1/redoc/")


@pytest.mark.parametrize("url", ROUTES)
def test_anonymous_callers_are_refused(url):
    for client in (APIClient(), Client()):  # an API caller, and a browser without a session
        response = client.get(url)
        assert response.status_code == 401, url
        assert b"/api/v1/me" not in response.content and b"openapi" not in response.content.lower()


def test_anonymous_swagger_init_script_is_refused():
    assert Client().get("/api/v1/docs/?script=").status_code == 401


def test_read_token_fetches_the_schema_as_ci_does(owner):
    response = api_client_for(owner, scopes=("read",)).get("/api/v1/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert b"/api/v1/me:" in response.content


def test_token_without_read_scope_is_refused(owner):
    response = api_client_for(owner, scopes=("write",)).get("/api/v1/schema/")
    assert response.status_code == 403
    assert b"'read' scope" in response.content


def test_bad_token_is_refused():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    assert client.get("/api/v1/schema/").status_code == 401


@pytest.mark.parametrize("url", ROUTES)
def test_signed_in_user_reads_schema_and_viewers(owner, url):
    client = Client()
    client.force_login(owner)
    assert client.get(url).status_code == 200
