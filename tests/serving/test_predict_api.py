"""POST /api/v1/endpoints/{name}/predict through Django: answers, validation, limits, who may call."""

from __future__ import annotations

import base64
import json

import numpy as np
import onnxruntime as ort
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import token_create
from apps.catalog import services as catalog
from apps.core import ratelimit
from apps.serving import ids
from apps.serving.inference import cache, logbook, shadow
from apps.serving.models import Route
from tests.conftest import page_client_for, share_as
from tests.serving.conftest import FEATURES, rows, version_of

URL = "/api/v1/endpoints/{}/predict"


@pytest.fixture(autouse=True)
def _quiet_background():
    """No background writers in this process: tests flush in their own transaction."""
    logbook.stop()
    shadow.stop()
    cache.STATE.reset()
    logbook.discard()
    ratelimit.reset_leases()
    yield
    logbook.discard()
    shadow.drain()
    cache.STATE.reset()


def client_for(user, *, endpoints=("fraud",), scopes=("predict",), rate="") -> APIClient:
    _, key = token_create(
        user=user, name="svc", scopes=list(scopes), expires_days=1, endpoints=list(endpoints), rate=rate
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def post(client, name: str, body, raw: bool = False):
    data = body if raw else json.dumps(body)
    return client.post(URL.format(name), data=data, content_type="application/json")


def expected(onnx: bytes, batch) -> np.ndarray:
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.asarray(batch, dtype=np.float32)})[0]


@pytest.mark.django_db
def test_a_token_caller_gets_outputs_version_route_and_an_id_that_names_the_route(owner, endpoint, mlp_onnx):
    batch = rows(3)
    response = post(client_for(owner), "fraud", {"inputs": batch, "key": "card-1"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"outputs", "model", "version", "route", "prediction_id"}
    assert (body["model"], body["version"], body["route"]) == ("fraud-score", 1, "main")
    assert np.allclose(body["outputs"]["output"], expected(mlp_onnx[0], batch), atol=1e-5)
    route = Route.objects.get(endpoint=endpoint, name="main")
    assert decode_id(body["prediction_id"]) == (endpoint.pk, route.pk, version_of(route.model, 1).pk)


def decode_id(value: str) -> tuple[int, int, int]:
    """(endpoint, route, version) of a prediction id, read by fixed offsets (base64url may hold
    "_", so the payload is the first 38 characters after "pr_"), its tag checked by ids."""
    payload = value[3:41]
    assert value.startswith("pr_") and value[41] == "_" and len(value) == 56
    endpoint_id, route_id, version_id, _, _ = ids._PACK.unpack(base64.urlsafe_b64decode(payload + "=="))
    assert ids.parse_prediction_id(value) is not None  # the tag is the issuer's
    return endpoint_id, route_id, version_id


@pytest.mark.django_db
def test_a_signed_in_viewer_predicts_through_the_session(owner, viewer, endpoint):
    share_as(endpoint, viewer, "viewer")
    response = post(page_client_for(viewer), "fraud", {"inputs": rows(1)})
    assert response.status_code == 200, response.content
    assert len(response.json()["outputs"]["output"]) == 1


@pytest.mark.django_db
def test_named_columns_feed_graph_inputs_and_signature_columns(owner, endpoint, scorer, mlp_onnx):
    batch = rows(2)
    by_input = post(client_for(owner), "fraud", {"inputs": {"input": batch}})
    assert by_input.status_code == 200, by_input.content
    assert np.allclose(by_input.json()["outputs"]["output"], expected(mlp_onnx[0], batch), atol=1e-5)

    v1 = version_of(scorer, 1)  # versions are immutable through save(); the signature as a
    # registration that records feature names would store it
    columns_signature = {**v1.signature, "columns": [f"f{i}" for i in range(FEATURES)]}
    type(v1).objects.filter(pk=v1.pk).update(signature=columns_signature)
    cache.STATE.reset()
    from apps.serving.inference import runtime

    runtime.SESSIONS.clear()
    columns = {f"f{i}": [row[i] for row in batch] for i in reversed(range(FEATURES))}
    by_name = post(client_for(owner), "fraud", {"inputs": columns})
    assert by_name.status_code == 200, by_name.content
    assert np.allclose(by_name.json()["outputs"]["output"], expected(mlp_onnx[0], batch), atol=1e-5)
    missing = dict(columns)
    del missing["f7"]
    answer = post(client_for(owner), "fraud", {"inputs": missing})
    assert answer.status_code == 400
    assert "Missing column 'f7'" in answer.json()["inputs"][0]


def _row_with(value) -> list:
    row = rows(1)[0]
    row[4] = value
    return row


BAD = [
    ({"inputs": [rows(1)[0], rows(1)[0][:29]]}, "inputs", "Row 2 has 29 values; fraud-score v1 takes 30"),
    ({"inputs": [_row_with("0.5")]}, "inputs", "the string '0.5'"),
    ({"inputs": [_row_with(None)]}, "inputs", "None"),
    ({"inputs": [[True] * FEATURES]}, "inputs", "true/false"),
    ({"inputs": []}, "inputs", "at least one row"),
    ({"inputs": {}}, "inputs", "at least one column"),
    ({"inputs": {"nope": [1.0]}}, "inputs", "Unknown column 'nope'"),
    ({"inputs": "rows"}, "inputs", "Send rows"),
    ({"inputs": rows(1), "temperature": 0.5}, "temperature", "Unknown field."),
    ({"key": "k"}, "inputs", "This field is required."),
    ({"inputs": rows(1), "key": 42}, "key", "as a string"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "field", "words"), BAD)
def test_bad_inputs_answer_400_naming_the_problem(owner, endpoint, body, field, words):
    response = post(client_for(owner), "fraud", body)
    assert response.status_code == 400, response.content
    assert words in " ".join(response.json()[field])
    assert logbook.pending() == (0, 0)  # a refused request is not counted as served


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("literal", "field", "words"),
    [
        ("NaN", "detail", "NaN is not valid JSON"),
        ("Infinity", "detail", "Infinity is not valid JSON"),
        ("-Infinity", "detail", "Infinity is not valid JSON"),
        ("1e400", "inputs", "NaN or infinity at row 1, value 11"),
    ],
)
def test_nan_and_infinity_answer_400(owner, endpoint, literal, field, words):
    row = ", ".join(["0.5"] * 10 + [literal] + ["0.5"] * 19)
    response = post(client_for(owner), "fraud", f'{{"inputs": [[{row}]]}}', raw=True)
    assert response.status_code == 400, response.content
    message = response.json()[field]
    assert words in (message if isinstance(message, str) else message[0])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[1, 2]",
        "[" * 5000 + "]" * 5000,
        '"\\ud800"',
        '{"inputs": {"\\ud800": [1.0]}}',
        '{"inputs": [[1]], "\\udc00": 1}',
        '{"inputs": [[' + "1" * 400 + "]]}",
    ],
)
def test_malformed_bodies_answer_400_never_500(owner, endpoint, raw):
    response = post(client_for(owner), "fraud", raw, raw=True)
    assert response.status_code == 400, response.content


@pytest.mark.django_db
def test_rows_over_the_limit_answer_413(owner, endpoint, settings):
    settings.SERVING_MAX_ROWS = 5
    assert post(client_for(owner), "fraud", {"inputs": rows(5)}).status_code == 200
    response = post(client_for(owner), "fraud", {"inputs": rows(6)})
    assert response.status_code == 413
    assert "limit is 5" in response.json()["detail"]


@pytest.mark.django_db
def test_missing_archived_and_invisible_endpoints_answer_404(owner, stranger, endpoint):
    assert post(client_for(owner, endpoints=["ghost"]), "ghost", {"inputs": rows(1)}).status_code == 404
    assert post(client_for(stranger), "fraud", {"inputs": rows(1)}).status_code == 404
    assert post(page_client_for(stranger), "fraud", {"inputs": rows(1)}).status_code == 404
    endpoint.archived_at = timezone.now()
    endpoint.save()
    assert post(client_for(owner), "fraud", {"inputs": rows(1)}).status_code == 404


@pytest.mark.django_db
def test_tokens_without_predict_or_without_the_endpoint_get_403(owner, endpoint):
    no_scope = client_for(owner, scopes=("read", "write"), endpoints=())
    assert post(no_scope, "fraud", {"inputs": rows(1)}).status_code == 403
    other = client_for(owner, endpoints=("other",))
    response = post(other, "fraud", {"inputs": rows(1)})
    assert response.status_code == 403
    assert "may not call endpoint 'fraud'" in response.json()["detail"]
    assert APIClient().post(URL.format("fraud"), {"inputs": rows(1)}, format="json").status_code == 401


@pytest.mark.django_db
def test_the_tokens_own_rate_answers_429_with_retry_after(owner, endpoint):
    client = client_for(owner, rate="3/h")
    assert [post(client, "fraud", {"inputs": rows(1)}).status_code for _ in range(3)] == [200, 200, 200]
    refused = post(client, "fraud", {"inputs": rows(1)})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert logbook.pending()[0] == 1 and sum(c[0] for c in logbook.BUFFER.windows.values()) == 3
    other = client_for(owner)  # another token of the same user is not held back
    assert post(other, "fraud", {"inputs": rows(1)}).status_code == 200


@pytest.mark.django_db
def test_a_model_that_fails_answers_500_and_is_logged_as_an_error(owner, scorer, mlp_onnx):
    from tests.serving.conftest import make_endpoint, mlp, onnx_of, register

    narrow = catalog.model_create(actor=owner, name="narrow", description="")
    version = register(narrow, owner, onnx_of(mlp(3, features=4), features=4))
    make_endpoint(owner, "fraud", [{"name": "main", "model": narrow, "version": version}])
    from apps.serving.inference import runtime

    model = runtime.session_for(version)
    broken = runtime.LoadedModel(
        version_id=version.pk,
        label="narrow v1",
        session=_Failing(model),
        signature={},
        nbytes=model.nbytes,
        source=model.source,
    )
    runtime.SESSIONS.put(broken)
    try:
        response = post(client_for(owner), "fraud", {"inputs": [[1.0, 2.0, 3.0, 4.0]]})
    finally:
        runtime.SESSIONS.clear()
    assert response.status_code == 500
    assert set(response.json()) == {"detail"}
    (counters,) = logbook.BUFFER.windows.values()
    assert counters[logbook.ERRORS] == 1 and len(logbook.BUFFER.entries) == 1
    assert logbook.BUFFER.entries[0][3] == 500


class _Failing:
    """An ORT session stand-in whose run raises, like ORT on a kernel failure."""

    def __init__(self, loaded):
        self._inner = loaded._session

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def run(self, *args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : kernel failed")
