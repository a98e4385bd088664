"""The access matrix (STYLE 9, in the manner of NetBox's generic API test cases).

A class per resource kind builds its objects once (`make`) and lists each route and method with
the answer every persona must get:

    class TestJobAccess(AccessMatrix):
        make = staticmethod(lambda owner, team: {"obj": job_launch(actor=owner, ...), "pk": ...})
        rows = {
            ("GET", "/api/v1/training/jobs/{pk}/"): dict(owner=200, viewer=200, stranger=404, anon=401),
            ("POST", "/api/v1/training/jobs/{pk}/cancel"): dict(editor=200, viewer=403, no_scope_token=403),
        }

Personas: owner; viewer and editor (the objects in `share` shared with them in that role); team
(a member of the team the objects are shared with as viewer: team sharing means viewer for every
kind); stranger (the owner's roles, nothing shared); admin (platform admin); auditor; anon (no
credentials: 401 on /api/, LOGIN, a redirect to sign-in, on pages); no_scope_token (the owner's
token without the scope the method needs: `read` only for writes, `write` only for reads; a row
names other scopes with ``scopes=(...)``). API rows call with each persona's token, page rows with
its session. An expected answer is a status, LOGIN, or a set of statuses where a row genuinely
allows two answers (the row says why).

Row options besides personas: ``body`` (a dict, or ``callable(world) -> dict`` for bodies naming
made objects or holding files), ``format`` (``json`` default on the API, ``multipart``), ``scopes``.
`make(owner, team)` returns a dict: URL parameters, plus ``share`` (the objects to share; default
``[obj]``). Each persona's request runs in a savepoint that is rolled back, so one persona's
write never changes what the next one sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.services import VALID_SCOPES, token_create
from tests.conftest import Personas, make_personas

PERSONAS = ("owner", "viewer", "editor", "team", "stranger", "admin", "auditor", "anon", "no_scope_token")
OPTIONS = ("body", "format", "scopes")
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN = "login"  # pages: 302 to /accounts/login/?next=...
# A body naming an object the caller may not view (a stranger's entity, feature or experiment): a
# field error (400) or not found (404); both hide whether it exists, so such rows take either.
HIDDEN_REFERENCE = frozenset({400, 404})
FULL_SCOPES = ("read", "write", "features", "predict")
ADMIN_SCOPES = (*FULL_SCOPES, *sorted({"admin", "metrics"} & VALID_SCOPES))  # those that exist so far


def api_reads(**overrides) -> dict:
    """Reading one object: viewers and up see it; strangers learn nothing."""
    return (
        dict(owner=200, viewer=200, editor=200, team=200, stranger=404, admin=200, anon=401, no_scope_token=403)
        | overrides
    )


def api_changes(ok: int = 200, **overrides) -> dict:
    """Changing one object: owner, editors and admins; viewers (and team viewers) 403."""
    return (
        dict(owner=ok, viewer=403, editor=ok, team=403, stranger=404, admin=ok, anon=401, no_scope_token=403)
        | overrides
    )


def api_sharing(ok: int = 200, **overrides) -> dict:
    """`{object}/sharing`: owner and editors (and admins) only, for reading too (shared/API.md)."""
    return api_changes(ok, **overrides)


def api_collection(ok: int = 200, **overrides) -> dict:
    """A collection: every signed-in user with the role (lists show only what they may view)."""
    return dict(owner=ok, viewer=ok, editor=ok, team=ok, stranger=ok, admin=ok, anon=401, no_scope_token=403) | (
        overrides
    )


def page_reads(**overrides) -> dict:
    return dict(owner=200, viewer=200, editor=200, team=200, stranger=404, admin=200, anon=LOGIN) | overrides


def page_changes(ok: int = 302, **overrides) -> dict:
    return dict(owner=ok, viewer=403, editor=ok, team=403, stranger=404, admin=ok, anon=LOGIN) | overrides


def page_collection(ok: int = 200, **overrides) -> dict:
    return dict(owner=ok, viewer=ok, editor=ok, team=ok, stranger=ok, admin=ok, anon=LOGIN) | overrides


@dataclass
class World:
    """What one matrix class works on: personas, their credentials, and the made objects."""

    people: Personas
    params: dict
    tokens: dict = field(default_factory=dict)
    cookies: dict = field(default_factory=dict)

    def prepare(self, extra_scopes) -> None:
        """Make every token and session up front: inside a persona's rolled-back savepoint they would vanish."""
        for persona in PERSONAS:
            if persona in ("anon", "no_scope_token"):
                continue
            user = self.people.user(persona)
            self.token(user, ADMIN_SCOPES if persona == "admin" else FULL_SCOPES)
            signer = Client()
            signer.force_login(user)
            self.cookies[persona] = signer.cookies[settings.SESSION_COOKIE_NAME].value
        for scopes in {("read",), ("write",), *extra_scopes}:
            self.token(self.people.owner, scopes)

    def token(self, user, scopes: tuple[str, ...]) -> str:
        key = (user.pk, tuple(scopes))
        if key not in self.tokens:
            self.tokens[key] = token_create(user=user, name="matrix", scopes=list(scopes), expires_days=1)[1]
        return self.tokens[key]

    def api_client(self, persona: str, method: str, scopes: tuple[str, ...] | None) -> APIClient:
        client = APIClient()
        if persona == "anon":
            return client
        if persona == "no_scope_token":
            key = self.tokens[(self.people.owner.pk, tuple(scopes or (("write",) if method in SAFE else ("read",))))]
        else:
            user = self.people.user(persona)
            key = self.tokens[(user.pk, ADMIN_SCOPES if persona == "admin" else FULL_SCOPES)]
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    def page_client(self, persona: str) -> Client:
        client = Client()
        if persona != "anon":
            client.cookies[settings.SESSION_COOKIE_NAME] = self.cookies[persona]
        return client


def share_all(people: Personas, objects) -> None:
    from apps.core.sharing import share_object

    for obj in objects:
        share_object(obj=obj, actor=people.owner, role="viewer", user=people.viewer)
        share_object(obj=obj, actor=people.owner, role="editor", user=people.editor)
        share_object(obj=obj, actor=people.owner, role="viewer", team=people.team)


def fill(path: str, params: dict) -> str:
    return path.format(**params)


def send(world: World, persona: str, method: str, path: str, spec: dict):
    url = fill(path, world.params)
    body = spec.get("body")
    if callable(body):
        body = body(world)
    if path.startswith("/api/"):
        client = world.api_client(persona, method, spec.get("scopes"))
        kwargs = {"format": spec.get("format", "json")} if body is not None else {}
        return getattr(client, method.lower())(url, body, **kwargs)
    client = world.page_client(persona)
    if body is None:
        return getattr(client, method.lower())(url)
    return getattr(client, method.lower())(url, body)


def verdict(expected, response) -> bool:
    if expected == LOGIN:
        return response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    if isinstance(expected, set | frozenset | tuple):
        return response.status_code in expected
    return response.status_code == expected


def describe(response) -> str:
    if response.status_code in (301, 302, 303, 307, 308):
        return f"{response.status_code} -> {response['Location']}"
    content = b"" if getattr(response, "streaming", False) else response.content
    text = content[:160].decode("utf-8", "replace").replace("\n", " ")
    if "json" not in response.get("Content-Type", ""):
        text = ""
    return f"{response.status_code} {text}".strip()


class AccessMatrix:
    """Base class: subclasses set `make` and `rows`; `test_row` runs once per row."""

    make: Callable | None = None
    rows: dict[tuple[str, str], dict] = {}

    @pytest.fixture(scope="class")
    @classmethod
    def world(cls, django_db_setup, django_db_blocker):
        with django_db_blocker.unblock():
            atomic = transaction.atomic()
            atomic.__enter__()
            try:
                people = make_personas()
                params = dict(cls.make(people.owner, people.team) if cls.make else {})
                share_all(people, params.pop("share", [params["obj"]] if "obj" in params else []))
                world = World(people=people, params=params)
                world.prepare({tuple(spec["scopes"]) for spec in cls.rows.values() if "scopes" in spec})
                yield world
            finally:
                transaction.set_rollback(True)
                atomic.__exit__(None, None, None)

    @pytest.mark.django_db
    def test_row(self, world, row):
        method, path = row
        spec = self.rows[row]
        wrong = []
        for persona in PERSONAS:
            if persona not in spec:
                continue
            with transaction.atomic():
                response = send(world, persona, method, path, spec)
                transaction.set_rollback(True)
            if not verdict(spec[persona], response):
                wrong.append(f"  {persona}: expected {spec[persona]}, got {describe(response)}")
        assert not wrong, f"{method} {path}\n" + "\n".join(wrong)


def matrix_rows(cls) -> list[tuple[str, str]]:
    unknown = [(row, key) for row, spec in cls.rows.items() for key in spec if key not in PERSONAS + OPTIONS]
    assert not unknown, f"{cls.__name__}: unknown persona or option in {unknown}"
    return list(cls.rows)
