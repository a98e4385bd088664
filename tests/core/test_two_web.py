"""Two web processes over one database and one Redis behave as one portal (issue 20, stateless web).

A session signed in on A works on B; a run socket opened on B receives a metric logged through A;
a token revoked through A is refused by B at once; an alias moved through A switches B's
predictions. Nothing a request needs may live only in the process that served the previous one.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from websockets.sync.client import connect

from apps.accounts import principals, roles
from apps.accounts.services import token_create
from apps.catalog import services as catalog
from apps.experiments import services as experiments
from tests.conftest import make_user
from tests.servers import start_server, stop
from tests.serving.conftest import make_endpoint, mlp_onnx, register, rows  # noqa: F401  mlp_onnx: a fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct-horse-battery-staple"  # pragma: allowlist secret


@pytest.fixture(scope="module")
def web(django_db_setup, django_db_blocker, tmp_path_factory):
    """Two uvicorn processes, A and B, on the test database and the test Redis: their base URLs."""
    # KEEP: the children keep their caller cache between requests (tests/child_process.py clears
    # it per request otherwise), so a revoked token is refused only if the change crosses processes.
    keep = {"PORTAL_TEST_KEEP_CALLER_CACHE": "1"}
    with django_db_blocker.unblock():
        a = start_server(tmp_path_factory.mktemp("web-a"), **keep)
        b = start_server(tmp_path_factory.mktemp("web-b"), **keep)
    yield f"http://127.0.0.1:{a[1]}", f"http://127.0.0.1:{b[1]}"
    stop(a[0])
    stop(b[0])


@pytest.fixture(autouse=True)
def _fresh_processes(settings):
    """The servers read artifacts from the portal's own vault folder; and they drop what they
    cached before this test's database flush (ids come back after a flush): the change channel."""
    settings.VAULT_STORAGE = None
    principals.announce()


def sign_in(base: str, username: str) -> requests.Session:
    """A real sign-in through the login form (CSRF token from the page, as a browser does)."""
    browser = requests.Session()
    page = browser.get(f"{base}/accounts/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = browser.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/accounts/login/", "Origin": base},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text[-2000:]
    assert "sessionid" in browser.cookies
    return browser


def post_form(browser: requests.Session, base: str, path: str) -> requests.Response:
    """POST a page form (no fields) with the session's CSRF cookie, as the page's button does."""
    return browser.post(
        f"{base}{path}",
        data={"csrfmiddlewaretoken": browser.cookies["csrftoken"]},
        headers={"Referer": f"{base}/", "Origin": base},
        allow_redirects=False,
        timeout=30,
    )


def test_session_from_a_works_on_b_and_a_socket_on_b_gets_metrics_logged_on_a(web):
    a, b = web
    alice = make_user("alice", roles.ML_ENGINEERS)
    run = experiments.run_create(
        experiment=experiments.experiment_create(name="churn", actor=alice), name="r1", actor=alice, source="script"
    )
    browser = sign_in(a, "alice")
    page = requests.get(f"{b}/experiments/{run.experiment_id}/", cookies={"sessionid": browser.cookies["sessionid"]},
                        allow_redirects=False, timeout=30)  # fmt: skip
    assert page.status_code == 200 and "churn" in page.text
    _, key = token_create(user=alice, name="trainer", scopes=["read", "write"], expires_days=1)
    socket_url = f"ws://{b.removeprefix('http://')}/ws/runs/{run.pk}/"
    cookie = f"sessionid={browser.cookies['sessionid']}"
    with connect(socket_url, origin=b, additional_headers={"Cookie": cookie}, open_timeout=10) as socket:
        assert json.loads(socket.recv(timeout=10))["group"] == f"run.{run.pk}"
        logged = requests.post(f"{a}/api/v1/runs/{run.pk}/log-batch", headers={"Authorization": f"Token {key}"},
                               json={"metrics": [{"key": "loss", "step": 7, "value": 0.25}]}, timeout=30)  # fmt: skip
        assert logged.status_code in (200, 201, 204), logged.text
        message = json.loads(socket.recv(timeout=10))
    assert message["type"] == "metric" and (message["key"], message["step"], message["value"]) == ("loss", 7, 0.25)


@pytest.fixture
def served(mlp_onnx):  # noqa: F811  the fixture imported above
    owner = make_user("owner", roles.ML_ENGINEERS)
    model = catalog.model_create(actor=owner, name="fraud-score", description="")
    v1 = register(model, owner, mlp_onnx[0])
    register(model, owner, mlp_onnx[1])
    catalog.alias_move(model=model, alias="staging", version=v1, actor=owner)
    make_endpoint(owner, "fraud", [{"name": "main", "model": model, "alias": "staging"}])
    return owner


def predict(base: str, key: str) -> requests.Response:
    return requests.post(f"{base}/api/v1/endpoints/fraud/predict", json={"inputs": rows(1), "key": "k"},
                         headers={"Authorization": f"Token {key}"}, timeout=30)  # fmt: skip


def test_token_revoked_through_a_is_refused_on_b_at_once(web, served):
    a, b = web
    token, key = token_create(user=served, name="svc", scopes=["read", "predict"], expires_days=1, endpoints=["fraud"])
    api = {"Authorization": f"Token {key}"}
    # B has the token in its caches (the caller cache and the predict path's token cache) ...
    for _ in range(3):
        assert predict(b, key).status_code == 200
        assert requests.get(f"{b}/api/v1/experiments/", headers=api, timeout=30).status_code == 200
    # ... A revokes it (the profile page's button) ...
    assert post_form(sign_in(a, "owner"), a, f"/accounts/tokens/{token.pk}/revoke").status_code == 302
    # ... and B's very next requests are refused.
    assert predict(b, key).status_code == 401
    assert requests.get(f"{b}/api/v1/experiments/", headers=api, timeout=30).status_code == 401


def test_alias_moved_through_a_switches_predictions_on_b(web, served):
    a, b = web
    _, key = token_create(
        user=served, name="svc", scopes=["read", "write", "predict"], expires_days=1, endpoints=["fraud"]
    )
    assert predict(b, key).json()["version"] == 1  # B has built and cached its plan
    moved = requests.put(f"{a}/api/v1/models/fraud-score/aliases/staging", json={"version": 2},
                         headers={"Authorization": f"Token {key}"}, timeout=30)  # fmt: skip
    assert moved.status_code == 200, moved.text
    # B rebuilds the plan on the first request after the change message (loading v2 first).
    deadline, versions = time.monotonic() + 10, []
    while time.monotonic() < deadline and versions[-1:] != [2]:
        versions.append(predict(b, key).json()["version"])
    assert versions[-1] == 2 and len(versions) <= 2, versions
