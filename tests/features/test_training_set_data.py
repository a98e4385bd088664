"""Reading a training set's rows back: `GET /api/v1/training-sets/{id}/data` and `portal_client`.

Streamed after a digest check (a changed file: 500, none of its bytes), audited with the actor,
an attachment, PII columns masked unless the caller may see the PII of their feature view.
"""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
import requests
from django.test import Client
from requests.adapters import BaseAdapter

from apps.accounts.services import token_create
from apps.core.models import AuditEntry
from apps.core.permissions import grant_extra, share
from apps.features import training_sets
from portal_client import PortalClient, PortalError
from tests.conftest import api_client_for

pytestmark = pytest.mark.django_db
LABELS = [
    {"customer_id": 1, "event_timestamp": "2024-06-01T00:00:00Z", "label": 1},
    {"customer_id": 2, "event_timestamp": "2024-06-01T00:00:00Z", "label": 0},
]


@pytest.fixture
def pii_set(ingested, owner):
    return training_sets.training_set_create(
        actor=owner, name="churn", features=["customer-stats:balance", "customer-stats:email"], entity_rows=LABELS
    )


def url(ts, fmt: str | None = None) -> str:
    return f"/api/v1/training-sets/{ts.pk}/data" + (f"?format={fmt}" if fmt else "")


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_training_set_rows_can_be_read_back_as_parquet_csv_and_json(pii_set, owner):
    client = api_client_for(owner)
    response = client.get(url(pii_set))
    assert response.status_code == 200 and response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"] == f'attachment; filename="churn-{pii_set.pk}.parquet"'
    assert response["X-Masked-Columns"] == ""
    table = pq.read_table(io.BytesIO(body(response)))
    assert table.column("balance").to_pylist() == [101.0, 201.0]
    assert table.column("email").to_pylist() == ["c1@example.com", "c2@example.com"]

    response = client.get(url(pii_set, "csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body(response).decode())))
    assert [r["label"] for r in rows] == ["1", "0"] and rows[0]["email"] == "c1@example.com"

    response = client.get(url(pii_set, "json"))
    rows = json.loads(body(response))
    assert response["Content-Type"] == "application/json" and isinstance(rows, list)
    assert rows[1]["customer_id"] == 2 and rows[1]["balance"] == 201.0 and rows[0]["event_timestamp"].endswith("Z")

    assert client.get(url(pii_set, "xlsx")).json() == {"format": ['"xlsx" is not a valid choice.']}


def test_reading_rows_is_audited_with_the_actor(pii_set, owner):
    body(api_client_for(owner).get(url(pii_set, "csv")))
    entry = AuditEntry.objects.get(additional_data__event="features.training_set_read")
    assert entry.actor == owner and entry.object_pk == str(pii_set.pk)
    assert entry.additional_data["format"] == "csv" and entry.additional_data["masked"] == []


def test_pii_columns_are_masked_unless_the_reader_may_see_the_views_pii(pii_set, ingested, collaborator):
    share(pii_set, role="viewer", user=collaborator)
    response = api_client_for(collaborator).get(url(pii_set, "json"))
    assert response.status_code == 200 and response["X-Masked-Columns"] == "email"
    rows = json.loads(body(response))
    assert [r["email"] for r in rows] == ["***", "***"] and rows[0]["balance"] == 101.0

    share(ingested, role="viewer", user=collaborator)  # seeing the view is not enough
    assert api_client_for(collaborator).get(url(pii_set, "json"))["X-Masked-Columns"] == "email"
    grant_extra(ingested, "view_pii", user=collaborator)
    response = api_client_for(collaborator).get(url(pii_set, "json"))
    assert response["X-Masked-Columns"] == "" and json.loads(body(response))[0]["email"] == "c1@example.com"


def test_a_changed_file_is_a_500_and_none_of_it_is_sent(pii_set, owner, feature_store):
    path = feature_store / pii_set.path
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    response = api_client_for(owner).get(url(pii_set, "csv"))
    assert response.status_code == 500 and "integrity check" in response.json()["detail"]
    assert not getattr(response, "streaming", False)
    assert not AuditEntry.objects.filter(additional_data__event="features.training_set_read").exists()


def test_strangers_get_404_and_tokens_without_read_403(pii_set, owner, stranger):
    assert api_client_for(stranger).get(url(pii_set)).status_code == 404
    assert api_client_for(owner, scopes=("write",)).get(url(pii_set)).status_code == 403
    assert api_client_for(owner).get("/api/v1/training-sets/999999/data").status_code == 404


class DjangoAdapter(BaseAdapter):
    """Send `requests` calls to the Django test client (no server): `PortalClient(session=...)`."""

    def __init__(self, client):
        super().__init__()
        self.client = client

    def send(self, request, **kwargs):
        path = request.url.split("://", 1)[1].split("/", 1)[1]
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items()}
        answer = self.client.generic(request.method, "/" + path, request.body or b"", **headers)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers.update(dict(answer.items()))
        content = b"".join(answer.streaming_content) if answer.streaming else answer.content
        response.raw = io.BytesIO(content)
        response.url, response.request = request.url, request
        return response

    def close(self):
        pass


def portal_client_for(user, scopes=("read",)) -> PortalClient:
    _, key = token_create(user=user, name="script", scopes=list(scopes), expires_days=1)
    session = requests.Session()
    session.mount("http://portal.test", DjangoAdapter(Client()))
    return PortalClient("http://portal.test", key, session=session, retries=0)


def test_portal_client_returns_a_table_or_a_dataframe(pii_set, collaborator):
    share(pii_set, role="viewer", user=collaborator)
    client = portal_client_for(collaborator)
    table = client.training_set_data(pii_set.pk)
    assert table.num_rows == 2 and table.column("email").to_pylist() == ["***", "***"]
    assert table.schema.metadata[b"portal.masked_columns"] == b"email"
    frame = client.training_set_data(pii_set.pk, as_="pandas")  # pandas is pinned in requirements.txt
    assert list(frame["label"]) == [1, 0] and frame.attrs["masked_columns"] == ["email"]


def test_portal_client_raises_the_portals_error(pii_set, stranger):
    with pytest.raises(PortalError) as info:
        portal_client_for(stranger).training_set_data(pii_set.pk)
    assert info.value.status == 404
    with pytest.raises(ValueError):
        portal_client_for(stranger).training_set_data(pii_set.pk, as_="polars")
