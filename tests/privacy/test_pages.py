"""The data-subject requests page: 404 for everyone but platform admins; admins find a key's data,
queue its erasure (confirmed), follow its progress and download its certificate; the commands."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from apps.core.audit import SYSTEM_USERNAME
from apps.core.models import VaultBlob
from apps.privacy import tasks
from apps.privacy.models import ErasureCertificate
from apps.serving.ids import pseudonymise_key
from apps.serving.models import PredictionLog
from tests.conftest import api_client_for, page_client_for
from tests.privacy.conftest import SUBJECT

URL = "/privacy/"


@pytest.mark.django_db
def test_the_page_is_hidden_from_non_admins(store, owner, auditor):
    for user in (owner, auditor):
        client = page_client_for(user)
        assert client.get(URL).status_code == 404
        assert client.post(URL, {"action": "access", "access-key": SUBJECT}).status_code == 404
    assert api_client_for(owner).post("/api/v1/privacy/access", {"key": SUBJECT}, format="json").status_code == 404


@pytest.mark.django_db
def test_admin_finds_a_keys_data_on_the_page(store, admin_user):
    client = page_client_for(admin_user)
    assert client.get(URL).status_code == 200
    response = client.post(URL, {"action": "access", "access-key": SUBJECT, "access-entity": "person"})
    text = response.content.decode()
    assert response.status_code == 200 and 'id="access-report"' in text
    assert "2 rows in 2 files" in text and "1 keys" in text and "2 rows" in text
    assert "run artifacts: not indexed by entity key" in text


@pytest.mark.django_db
def test_admin_erases_with_confirmation_then_downloads_the_certificate(
    store, owner, admin_user, django_capture_on_commit_callbacks
):
    client = page_client_for(admin_user)
    refused = client.post(URL, {"action": "erase", "erase-key": SUBJECT})
    assert refused.status_code == 200 and "Tick the box to confirm" in refused.content.decode()
    assert ErasureCertificate.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = client.post(URL, {"action": "erase", "erase-key": SUBJECT, "erase-confirm": "on"})
    certificate = ErasureCertificate.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/privacy/erasures/{certificate.pk}/"
    assert certificate.state == "queued" and certificate.key_blob is not None and len(sent) == 1
    queued = client.get(response["Location"]).content.decode()
    assert 'hx-trigger="every 2s"' in queued and "Waiting for a worker" in queued
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.erase(certificate.pk)["state"] == "succeeded"
    certificate.refresh_from_db()
    assert certificate.key_blob is None and not VaultBlob.objects.filter(purpose="privacy.subject-key").exists()
    assert not PredictionLog.objects.filter(key_hash=pseudonymise_key(SUBJECT)).exists()
    done = client.get(response["Location"]).content.decode()
    assert "hx-trigger" not in done and "Erased:" in done and certificate.document_sha256 in done
    download = client.get(f"/privacy/erasures/{certificate.pk}/certificate.json")
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
    document = json.loads(download.content)
    assert document["certificate"] == certificate.pk and document["counts"]["online"] == {"removed": 1}
    assert SUBJECT not in download.content.decode()
    assert page_client_for(owner).get(f"/privacy/erasures/{certificate.pk}/certificate.json").status_code == 404


@pytest.mark.django_db
def test_the_api_reports_and_queues(store, admin_user, django_capture_on_commit_callbacks):
    api = api_client_for(admin_user)
    report = api.post("/api/v1/privacy/access", {"key": SUBJECT}, format="json")
    assert report.status_code == 200 and report.json()["offline"]["rows"] == 2
    with django_capture_on_commit_callbacks(execute=False):
        queued = api.post("/api/v1/privacy/erasures/", {"key": SUBJECT, "entity": "person"}, format="json")
    assert queued.status_code == 202 and queued.json()["state"] == "queued"
    bad = api.post("/api/v1/privacy/erasures/", {"key": SUBJECT, "entity": "nope"}, format="json")
    assert bad.status_code == 400 and "entity" in bad.json()
    listed = api.get("/api/v1/privacy/erasures/").json()
    assert listed["count"] == 1 and "key" not in listed["results"][0]


@pytest.mark.django_db
def test_the_commands_report_and_erase_idempotently(store, django_capture_on_commit_callbacks):
    out = io.StringIO()
    call_command("subject_access", SUBJECT, "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["offline"]["rows"] == 2 and report["online"]["keys"] == 1 and report["prediction_logs"]["rows"] == 2
    text = io.StringIO()
    call_command("subject_access", SUBJECT, stdout=text)
    assert "run artifacts: not indexed by entity key" in text.getvalue()
    bars = []
    for expected in (2, 0):
        out, err = io.StringIO(), io.StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("subject_erase", SUBJECT, "--yes", stdout=out, stderr=err)
        assert f"offline: {expected} removed" in out.getvalue() and "succeeded" in out.getvalue()
        bars.append(err.getvalue())
    assert "offline files: 100%" in bars[0] and "prediction logs: 100%" in bars[0]
    certificates = list(ErasureCertificate.objects.order_by("pk"))
    assert [c.counts["offline"]["removed"] for c in certificates] == [2, 0]
    assert {c.requested_by.username for c in certificates} == {SYSTEM_USERNAME}
