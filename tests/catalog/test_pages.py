"""Browser pages: list with filters, model page, upload, aliases, card, sharing, download."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.catalog import services
from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.core.models import AuditEntry
from tests.catalog.conftest import add_versions, queries_for
from tests.conftest import page_client_for as login

pytestmark = pytest.mark.django_db


def test_pages_need_login(client, registered):
    for url in ["/models/", "/models/credit-risk/", "/models/credit-risk/versions/1/download/"]:
        r = client.get(url)
        assert r.status_code == 302 and r["Location"].startswith("/accounts/login/")


def test_list_page_filters(owner, version):
    for i in range(30):
        services.model_create(actor=owner, name=f"model-{i:02d}", tags=["even" if i % 2 == 0 else "odd"])
    for name in ("model-01", "model-03"):
        model = RegisteredModel.objects.get(name=name)
        services.alias_move(model=model, alias="staging", version=add_versions(model, owner, version.artifact, 1,
                            alias_each=False)[0], actor=owner)  # fmt: skip
    client = login(owner)
    r = client.get("/models/?sort=name")
    assert r.status_code == 200 and b"model-00" in r.content and b"model-29" not in r.content  # 25 per page
    assert b"Page 1 of 2" in r.content
    r = client.get("/models/?tag=odd&alias=staging")
    assert b"model-01" in r.content and b"model-03" in r.content and b"model-05" not in r.content
    assert b"staging: v1" in r.content
    assert client.get("/models/?page=abc&sort=zzz&framework=cobol&archived=maybe").status_code == 200


def test_list_page_query_count_is_the_same_for_5_and_50_models(owner, version, team):
    def grow(count: int) -> None:
        for _ in range(count):
            model = services.model_create(actor=owner, name=f"bulk-{RegisteredModel.objects.count()}", team="risk")
            add_versions(model, owner, version.artifact, 1)

    grow(4)
    client = login(owner)
    queries_for(client, "/models/")
    five = queries_for(client, "/models/")
    grow(45)
    assert queries_for(client, "/models/") == five


def test_model_page_query_count_is_the_same_for_5_and_50_versions(owner, registered, version):
    add_versions(registered, owner, version.artifact, 4)
    client = login(owner)
    queries_for(client, "/models/credit-risk/")
    five = queries_for(client, "/models/credit-risk/")
    add_versions(registered, owner, version.artifact, 45)
    assert queries_for(client, "/models/credit-risk/") == five
    page = client.get("/models/credit-risk/")
    assert page.content.count(b'href="/models/credit-risk/versions/') == 50 and b">a50<" in page.content


def test_stranger_gets_404_on_every_page(stranger, version):
    client = login(stranger)
    assert b"credit-risk" not in client.get("/models/").content
    for url in ["/models/credit-risk/", "/models/credit-risk/edit/", "/models/credit-risk/card/",
                "/models/credit-risk/upload/", "/models/credit-risk/versions/1/",
                "/models/credit-risk/versions/1/download/"]:  # fmt: skip
        assert client.get(url).status_code == 404, url
    for url in ["/models/credit-risk/share/", "/models/credit-risk/aliases/", "/models/credit-risk/archive/"]:
        assert (
            client.post(url, {"user": "stranger", "role": "editor", "alias": "staging", "version": 1}).status_code
            == 404
        )


def test_model_page_chart_card_and_sharing(owner, collaborator, version, registered, onnx_bytes):
    from tests.catalog.conftest import register

    register(registered, owner, onnx_bytes, metrics={"auc": 0.95})
    client = login(owner)
    r = client.get("/models/credit-risk/?metric=auc")
    assert r.status_code == 200
    assert b"plotly.min.js" in r.content and b'"y": [0.91, 0.95]' in r.content
    assert b"0 % complete" in r.content
    assert b"Promotions check" not in r.content
    # a protected alias points to the approval flow, not to lifting the protection
    assert b"moves only through an approved promotion" in r.content and b"does not offer yet" not in r.content
    r = client.post("/models/credit-risk/card/", {"intended_use": "Score retail loan applications in the UAE.",
                                                  "limitations": "short"})  # fmt: skip
    assert r.status_code == 302
    registered.card.refresh_from_db()
    assert registered.card.completeness == pytest.approx(1 / 7, abs=0.001)
    r = client.post("/models/credit-risk/share/", {"user": "collaborator", "role": "editor"}, follow=True)
    assert b"Shared with collaborator as editor" in r.content
    assert login(collaborator).get("/models/credit-risk/").status_code == 200
    assert b"remove" in client.get("/models/credit-risk/").content
    client.post("/models/credit-risk/unshare/", {"user": "collaborator"})
    assert login(collaborator).get("/models/credit-risk/").status_code == 404


def test_upload_page_and_errors(owner, registered, onnx_bytes):
    client = login(owner)
    assert client.get("/models/credit-risk/upload/").status_code == 200
    r = client.post("/models/credit-risk/upload/", {"artifact": SimpleUploadedFile("m.onnx", b"junk"), "metrics": "{"})
    assert r.status_code == 200 and b"Not valid JSON" in r.content
    r = client.post("/models/credit-risk/upload/", {"artifact": SimpleUploadedFile("m.onnx", b"junk")})
    assert r.status_code == 200 and b"not an ONNX model" in r.content
    r = client.post("/models/credit-risk/upload/", {"artifact": SimpleUploadedFile("m.onnx", onnx_bytes),
                                                    "metrics": '{"auc": 0.9}', "feature_views": "loans, bureau"})  # fmt: skip
    assert r.status_code == 302 and r["Location"] == "/models/credit-risk/versions/1/"
    assert ModelVersion.objects.get().feature_views == ["loans", "bureau"]
    page = client.get("/models/credit-risk/versions/1/")
    assert b"sha256" in page.content and b"batch" in page.content
    download = client.get("/models/credit-risk/versions/1/download/")
    assert b"".join(download.streaming_content) == onnx_bytes
    assert AuditEntry.objects.filter(additional_data__event="artifact.download").count() == 1


def test_alias_form_refuses_protected(owner, version):
    client = login(owner)
    r = client.post("/models/credit-risk/aliases/", {"alias": "production", "version": 1})
    assert r.status_code == 409 and b"approved promotion" in r.content and not Alias.objects.exists()
    r = client.post("/models/credit-risk/aliases/", {"alias": "staging", "version": 1}, follow=True)
    assert b"staging now points to v1" in r.content


def test_create_model_page_and_dashboard(owner, team):
    client = login(owner)
    r = client.post("/models/new/", {"name": "Bad Name"})
    assert r.status_code == 200 and b"lowercase" in r.content
    r = client.post("/models/new/", {"name": "churn", "tags": "a, b", "team": team.pk})
    assert r.status_code == 302
    home = client.get("/")
    assert b"Versions this week" in home.content


def test_viewer_sees_no_edit_controls(collaborator, version):
    from apps.core.permissions import share

    share(version.model, role="viewer", user=collaborator)
    client = login(collaborator)
    page = client.get("/models/credit-risk/")
    assert page.status_code == 200 and b"Upload a version" not in page.content and b"Sharing" not in page.content
    assert client.post("/models/credit-risk/versions/1/", {"description": "x"}).status_code == 403
    assert client.get("/models/credit-risk/upload/").status_code == 403


def test_admin_pages_render(admin_user, version):
    client = login(admin_user)
    for url in ["/admin/catalog/registeredmodel/", f"/admin/catalog/registeredmodel/{version.model.pk}/change/",
                "/admin/catalog/modelversion/", f"/admin/catalog/modelversion/{version.pk}/change/",
                "/admin/catalog/alias/", "/admin/catalog/modelcard/"]:  # fmt: skip
        assert client.get(url).status_code == 200, url
    assert client.get("/admin/catalog/modelversion/add/").status_code == 403


def test_tampered_download_page_explains(owner, version):
    from pathlib import Path

    from apps.core import vault

    path = Path(vault.storage().path(version.artifact.storage_key))
    raw = bytearray(path.read_bytes())
    raw[30] ^= 1
    path.write_bytes(bytes(raw))
    r = login(owner).get("/models/credit-risk/versions/1/download/")
    assert r.status_code == 500 and b"failed its integrity check" in r.content


def test_version_page_query_count(owner, registered, version, django_assert_max_num_queries):
    client = login(owner)
    client.get("/models/credit-risk/versions/1/")
    with django_assert_max_num_queries(15):
        assert client.get("/models/credit-risk/versions/1/").status_code == 200


def test_upload_over_the_limit_is_the_413_page(owner, registered, onnx_bytes, settings):
    settings.CATALOG_MAX_ARTIFACT_BYTES = 1000
    r = login(owner).post("/models/credit-risk/upload/", {"artifact": SimpleUploadedFile("m.onnx", onnx_bytes)})
    assert r.status_code == 413 and b"1,000 bytes" in r.content
    assert not ModelVersion.objects.exists()


def test_model_list_offers_register_button_from_capabilities(owner, approver):
    assert b"Register a model" in login(owner).get("/models/").content
    assert b"Register a model" not in login(approver).get("/models/").content
