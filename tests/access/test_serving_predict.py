"""Serving: POST /api/v1/endpoints/{name}/predict for every persona (token callers and sessions).

A predict token names its endpoints: the matrix's tokens name the endpoint in the first class
(viewers and up predict, strangers 404) and name nothing in the second (403 for every persona
who can see the endpoint, 404 still for strangers)."""

from __future__ import annotations

import io

import pytest
from django.test import Client

from apps.accounts.models import ApiToken
from apps.core.permissions import grant_owner
from apps.serving.inference import cache, logbook
from tests.access import objects
from tests.access.matrix import AccessMatrix
from tests.conftest import make_personas

P = "/api/v1/endpoints/{name}/predict"
BODY = {"inputs": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], "key": "customer-1"}


def served(owner, team) -> dict:
    from apps.catalog import services as catalog
    from apps.serving.models import Endpoint, Route

    model = catalog.model_create(actor=owner, name="predict-model", description="")
    onnx = objects.onnx_bytes()
    version = catalog.version_register(model=model, actor=owner, artifact=io.BytesIO(onnx), artifact_size=len(onnx))
    endpoint = Endpoint.objects.create(owner=owner, name="fraud-api")
    grant_owner(endpoint)
    Route.objects.create(endpoint=endpoint, name="main", model=model, version=version, weight=100)
    return {"obj": endpoint, "name": endpoint.name}


PREDICTS = dict(
    owner=200, viewer=200, editor=200, team=200, stranger=404, admin=200, auditor=200, anon=401, no_scope_token=403
)


class TestPredictWithTheEndpointNamed(AccessMatrix):
    make = staticmethod(served)
    rows = {("POST", P): PREDICTS | {"body": BODY}}

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _tokens_name_the_endpoint(cls, world, django_db_blocker):
        with django_db_blocker.unblock():
            for token in ApiToken.objects.filter(name="matrix"):
                token.endpoints = ["fraud-api"]
                token.save()  # saved, not updated: the caches of tokens hear of it
        cache.STATE.reset()
        yield
        logbook.discard()


class TestPredictWithoutTheEndpointNamed(AccessMatrix):
    make = staticmethod(served)
    rows = {
        ("POST", P): PREDICTS
        | dict(owner=403, viewer=403, editor=403, team=403, admin=403, auditor=403)
        | {"body": BODY, "scopes": ("read", "write", "features")}
    }

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _fresh(cls, world):
        cache.STATE.reset()
        yield
        logbook.discard()


@pytest.mark.django_db
def test_signed_in_sessions_predict_when_they_may_view_the_endpoint():
    people = make_personas()
    endpoint = served(people.owner, people.team)["obj"]
    from apps.core.sharing import share_object

    share_object(obj=endpoint, actor=people.owner, role="viewer", user=people.viewer)
    share_object(obj=endpoint, actor=people.owner, role="viewer", team=people.team)
    cache.STATE.reset()
    expected = dict(owner=200, viewer=200, team=200, stranger=404, admin=200, auditor=200)
    got = {}
    for persona in expected:
        client = Client()
        client.force_login(people.user(persona))
        got[persona] = client.post(P.format(name="fraud-api"), BODY, content_type="application/json").status_code
    anonymous = Client().post(P.format(name="fraud-api"), BODY, content_type="application/json")
    logbook.discard()
    assert got == expected
    assert anonymous.status_code == 401
