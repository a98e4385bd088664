"""A reusable proof that a stranger can neither list, read nor change an object.

Use it in any app's tests:

    class TestModelStranger(StrangerDeniedMixin):
        list_url = "/api/v1/models/"
        def make_object(self, owner): return registered_model(owner=owner)
        def detail_url(self, obj): return f"/api/v1/models/{obj.name}/"
        change_payload = {"description": "hijacked"}
        extra_urls = lambda self, obj: [f"/api/v1/models/{obj.name}/versions/"]   # optional, GET must 404
"""

from __future__ import annotations

import pytest

from tests.conftest import api_client_for


class StrangerDeniedMixin:
    list_url: str = ""
    change_payload: dict | None = None
    delete_allowed_for_owner: bool = False
    list_key = "results"

    def make_object(self, owner):  # pragma: no cover - must be provided
        raise NotImplementedError

    def detail_url(self, obj) -> str:  # pragma: no cover - must be provided
        raise NotImplementedError

    def extra_urls(self, obj) -> list[str]:
        return []

    def identity(self, item: dict, obj) -> bool:
        return str(item.get("id")) == str(obj.pk) or item.get("name") == getattr(obj, "name", object())

    @pytest.fixture
    def target(self, owner):
        return self.make_object(owner)

    def test_owner_can_read(self, owner, target):
        response = api_client_for(owner).get(self.detail_url(target))
        assert response.status_code == 200, response.content

    def test_stranger_cannot_list(self, stranger, target):
        response = api_client_for(stranger).get(self.list_url)
        assert response.status_code == 200, response.content
        body = response.json()
        items = body[self.list_key] if isinstance(body, dict) else body
        assert not [item for item in items if self.identity(item, target)]

    def test_stranger_cannot_read(self, stranger, target):
        assert api_client_for(stranger).get(self.detail_url(target)).status_code == 404
        for url in self.extra_urls(target):
            assert api_client_for(stranger).get(url).status_code == 404, url

    def test_stranger_cannot_change(self, stranger, target):
        client = api_client_for(stranger)
        if self.change_payload is not None:
            assert client.patch(self.detail_url(target), self.change_payload, format="json").status_code == 404
        assert client.delete(self.detail_url(target)).status_code in (404, 405)

    def test_anonymous_gets_401(self, target):
        from rest_framework.test import APIClient

        assert APIClient().get(self.detail_url(target)).status_code == 401
