"""The lean ASGI path in a real uvicorn process: an alias move under load fails no request, and the
lean path answers like the Django view for the same requests."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from apps.accounts.services import token_create
from apps.catalog import services as catalog
from apps.serving.inference import cache, logbook, shadow
from tests.serving.conftest import make_endpoint, register, rows

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
URL = "/api/v1/endpoints/{}/predict"


@pytest.fixture(autouse=True)
def _shared_vault(settings):
    """The server reads artifacts from the portal's own vault, not a test's temporary one."""
    settings.VAULT_STORAGE = None
    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    yield
    logbook.discard()
    cache.STATE.reset()


def send(base: str, name: str, body, key: str, scheme: str = "Token") -> tuple[int, dict, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        base + URL.format(name),
        data=data,
        method="POST",
        headers={"Authorization": f"{scheme} {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


@pytest.fixture
def served(owner, mlp_onnx):
    model = catalog.model_create(actor=owner, name="fraud-score", description="")
    v1 = register(model, owner, mlp_onnx[0])
    v2 = register(model, owner, mlp_onnx[1])
    catalog.alias_move(model=model, alias="staging", version=v1, actor=owner)
    make_endpoint(owner, "fraud", [{"name": "main", "model": model, "alias": "staging"}])
    _, key = token_create(user=owner, name="svc", scopes=["predict"], expires_days=1, endpoints=["fraud"])
    return model, v1, v2, key


def test_an_alias_move_under_load_switches_versions_with_no_failed_request(portal_server, owner, served):
    model, _, v2, key = served
    results, stop = [], threading.Event()

    def fire():
        while not stop.is_set():
            status, body, _ = send(portal_server, "fraud", {"inputs": rows(1), "key": "k"}, key)
            results.append((status, body.get("version")))

    thread = threading.Thread(target=fire)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(results) < 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        catalog.alias_move(model=model, alias="staging", version=v2, actor=owner)
        moved_at = len(results)
        while time.monotonic() < deadline and sum(1 for _, v in results[moved_at:] if v == 2) < 50:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(15)
    statuses = {status for status, _ in results}
    versions = [version for _, version in results]
    assert statuses == {200}, [r for r in results if r[0] != 200][:5]
    assert versions[0] == 1 and versions[-1] == 2
    assert versions == sorted(versions)  # once switched, never back

    from apps.serving.models import TrafficWindow

    def counted() -> int:  # the server's log writer adds every request to its minute, in batches
        return sum(TrafficWindow.objects.filter(endpoint__name="fraud").values_list("requests", flat=True))

    assert _eventually(lambda: counted() == len(results), seconds=5), (counted(), len(results))
    by_version = dict(
        TrafficWindow.objects.filter(endpoint__name="fraud")
        .values_list("version__version")
        .annotate(n=Sum("requests"))
        .values_list("version__version", "n")
    )
    assert by_version == {1: versions.count(1), 2: versions.count(2)}


def test_the_lean_path_answers_like_the_django_view(portal_server, owner, stranger, served):
    _, _, _, key = served
    _, no_scope = token_create(user=owner, name="rw", scopes=["read", "write"], expires_days=1)
    _, elsewhere = token_create(user=owner, name="other", scopes=["predict"], expires_days=1, endpoints=["other"])
    _, strangers = token_create(user=stranger, name="s", scopes=["predict"], expires_days=1, endpoints=["fraud"])
    short_row = rows(1)
    short_row[0] = short_row[0][:29]
    cases = [
        ("fraud", {"inputs": rows(2), "key": "same"}, key),
        ("fraud", {"inputs": short_row}, key),
        ("fraud", {"inputs": rows(1), "extra": 1}, key),
        ("fraud", {"inputs": [["x"] * 30]}, key),
        ("fraud", b"{not json", key),
        ("fraud", {"inputs": rows(1001)}, key),
        ("ghost", {"inputs": rows(1)}, key),
        ("fraud", {"inputs": rows(1)}, no_scope),
        ("fraud", {"inputs": rows(1)}, elsewhere),
        ("fraud", {"inputs": rows(1)}, strangers),
        ("fraud", {"inputs": rows(1)}, "ptk_nope_nope"),
    ]
    for name, body, token in cases:
        lean_status, lean, _ = send(portal_server, name, body, token)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        data = body if isinstance(body, bytes) else json.dumps(body)
        django = client.post(URL.format(name), data=data, content_type="application/json")
        assert lean_status == django.status_code, (name, body if isinstance(body, bytes) else list(body), lean)
        if lean_status == 200:
            assert set(lean) == set(django.json())
            assert (lean["route"], lean["version"], lean["outputs"]) == (
                django.json()["route"],
                django.json()["version"],
                django.json()["outputs"],
            )
        else:
            assert lean == django.json()
    bearer_status, bearer, _ = send(portal_server, "fraud", {"inputs": rows(1)}, key, scheme="Bearer")
    assert bearer_status == 200 and bearer["version"] == 1


def test_a_revoked_token_and_an_unshared_caller_are_refused_by_the_server_within_a_second(
    portal_server, owner, viewer, served
):
    from apps.accounts.models import ApiToken
    from apps.accounts.services import token_revoke
    from apps.core.sharing import share_object, unshare_object
    from apps.serving.models import Endpoint

    _, _, _, key = served
    assert send(portal_server, "fraud", {"inputs": rows(1)}, key)[0] == 200
    token_revoke(token=ApiToken.objects.get(user=owner, name="svc"), actor=owner)
    assert _eventually(lambda: send(portal_server, "fraud", {"inputs": rows(1)}, key)[0] == 401)

    endpoint = Endpoint.objects.get(name="fraud")
    share_object(obj=endpoint, actor=owner, role="viewer", user=viewer)
    _, viewers = token_create(user=viewer, name="v", scopes=["predict"], expires_days=1, endpoints=["fraud"])
    assert send(portal_server, "fraud", {"inputs": rows(1)}, viewers)[0] == 200
    unshare_object(obj=endpoint, actor=owner, user=viewer)
    assert _eventually(lambda: send(portal_server, "fraud", {"inputs": rows(1)}, viewers)[0] == 404)


def _eventually(check, seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_the_users_api_rate_and_the_tokens_own_rate_answer_429_on_the_lean_path(tmp_path, owner, served):
    from tests.servers import start_server, stop

    _, _, _, key = served
    _, limited = token_create(
        user=owner, name="slow", scopes=["predict"], expires_days=1, endpoints=["fraud"], rate="2/h"
    )
    from apps.core.ratelimit import RATE_PREFIX
    from apps.core.redis_pool import redis_client

    for stale in redis_client().scan_iter(f"{RATE_PREFIX}u*"):  # user ids repeat across test databases
        redis_client().delete(stale)
    process, port = start_server(tmp_path, API_THROTTLE_RATE="6/min")
    base = f"http://127.0.0.1:{port}"
    try:
        by_token = [send(base, "fraud", {"inputs": rows(1)}, limited) for _ in range(3)]
        assert [status for status, _, _ in by_token] == [200, 200, 429]
        assert int(by_token[-1][2]["retry-after"]) >= 1 and "throttled" in by_token[-1][1]["detail"]
        by_user = [send(base, "fraud", {"inputs": rows(1)}, key)[0] for _ in range(5)]
        assert by_user[:3] == [200, 200, 200] and by_user[-1] == 429  # 6 per minute for the user, all tokens
    finally:
        stop(process)
