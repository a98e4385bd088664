"""The audit page reads in words: `field: old → new`, permission rows as sentences, and system
bookkeeping folded behind a toggle, while the trail and the CSV export stay complete and raw."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import ApiToken
from apps.catalog import services as catalog
from apps.catalog.models import RegisteredModel
from apps.core.audit import acting_as
from apps.core.audit_display import audit_rows, change_lines, is_bookkeeping, value_text
from apps.core.models import AuditEntry, VaultBlob
from tests.conftest import page_client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def shared_model(owner, team):
    """A model created for the team (a group permission row), then described anew and archived."""
    with acting_as(owner):
        model = catalog.model_create(actor=owner, name="credit-risk", description="Scores loans", team=team.slug)
        catalog.model_update(model=model, actor=owner, description="Scores loan applications")
        catalog.model_archive(model=model, actor=owner)
    return model


def _text(response) -> str:
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'").replace("&gt;", ">")


def test_audit_changes_read_as_field_old_to_new(auditor, shared_model):
    page = _text(page_client_for(auditor).get("/audit/"))
    assert "description: 'Scores loans' → 'Scores loan applications'" in page
    assert "['Scores loans'" not in page and "[null," not in page


def test_audit_changes_format_dates_and_booleans(owner, collaborator):
    with acting_as(owner):
        collaborator.is_active = False
        collaborator.save()
    entry = AuditEntry.objects.filter(content_type__model="user", action=AuditEntry.Action.UPDATE).latest("id")
    assert "active: yes → no" in change_lines(entry)
    archived = value_text("2026-11-30 12:42:06.545408")
    assert archived == "30 Nov 2026, 12:42 UTC"
    assert value_text(0.912345678901234) == "0.9123"
    assert value_text("x" * 200).endswith("…'") and len(value_text("x" * 200)) <= 62


def test_audit_page_hides_reverse_relation_placeholders(auditor, shared_model):
    page = _text(page_client_for(auditor).get("/audit/?system=1"))
    assert "catalog.Alias.None" not in page and "ModelVersion.None" not in page
    assert "name: 'credit-risk'" in page


def test_audit_changes_name_related_rows(auditor, shared_model):
    page = _text(page_client_for(auditor).get("/audit/"))
    assert "team: Risk Analytics" in page and "owner: owner" in page
    assert "team: #" not in page and "owner: #" not in page


def test_permission_rows_are_folded_behind_a_toggle(auditor, shared_model):
    client = page_client_for(auditor)
    rows = audit_rows(AuditEntry.objects.select_related("content_type").order_by("-id"))
    hidden = sum(row.is_bookkeeping for row in rows[:50])
    assert hidden >= 4  # three owner rows and the team's row, at least
    default = client.get("/audit/")
    text = _text(default)
    assert f"Show system bookkeeping ({hidden})" in text
    assert "registeredmodeluserobjectpermission" not in text
    assert "granted view on model" not in text
    shown = _text(client.get("/audit/?system=1"))
    assert "granted view on model 'credit-risk' to team Risk Analytics" in shown
    assert "granted edit on model 'credit-risk' to user owner" in shown
    assert "Hide system bookkeeping" in shown


def test_csv_export_keeps_bookkeeping_rows_raw(auditor, shared_model):
    response = page_client_for(auditor).get("/audit/?format=csv")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))[1:]
    assert len(rows) == AuditEntry.objects.count()
    kinds = {row[5] for row in rows}
    assert {"registeredmodeluserobjectpermission", "registeredmodelgroupobjectpermission"} <= kinds
    assert any("catalog.Alias.None" in row[8] for row in rows)  # raw, as stored


def test_is_bookkeeping_covers_vault_blobs_and_token_touches(owner):
    def entry(model, action, changes=None, repr_text="x"):
        return AuditEntry(
            content_type=ContentType.objects.get_for_model(model),
            object_pk="1",
            object_repr=repr_text,
            action=action,
            changes=changes,
        )

    assert is_bookkeeping(entry(VaultBlob, AuditEntry.Action.CREATE, {"kid": [None, "k1"]}))
    assert is_bookkeeping(entry(ApiToken, AuditEntry.Action.UPDATE, {"last_used_at": ["2026-01-01", "2026-01-02"]}))
    assert not is_bookkeeping(entry(ApiToken, AuditEntry.Action.UPDATE, {"revoked_at": [None, "2026-01-02"]}))
    noise = {"versions": [None, "catalog.ModelVersion.None"], "aliases": [None, "catalog.Alias.None"]}
    assert is_bookkeeping(entry(RegisteredModel, AuditEntry.Action.UPDATE, noise))
    assert not is_bookkeeping(entry(RegisteredModel, AuditEntry.Action.UPDATE, {"description": ["a", "b"]}))
    assert not is_bookkeeping(entry(RegisteredModel, AuditEntry.Action.ACCESS))


def _audit_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/audit/?system=1")
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_audit_page_queries_do_not_grow_with_entries(auditor, owner, team):
    client = page_client_for(auditor)
    _audit_queries(client)  # the caller's user and roles are cached per process after the first request
    with acting_as(owner):
        for i in range(2):
            catalog.model_create(actor=owner, name=f"m-{i}", team=team.slug)
    few = _audit_queries(client)
    with acting_as(owner):
        for i in range(2, 12):
            catalog.model_create(actor=owner, name=f"m-{i}", team=team.slug)
    assert AuditEntry.objects.count() > 50
    assert _audit_queries(client) == few


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_audit_page_in_the_browser_folds_bookkeeping(portal_server, page, login):
    from apps.accounts import roles
    from apps.accounts.services import team_create
    from tests.browser import screenshot
    from tests.conftest import make_user

    noor = make_user("noor", roles.AUDITORS)
    maya = make_user("maya", roles.ML_ENGINEERS)
    ravi = make_user("ravi", roles.ML_ENGINEERS)
    team_create(name="Risk Analytics", slug="risk", members=[maya, ravi])
    with acting_as(maya):
        model = catalog.model_create(actor=maya, name="credit-risk", description="Scores loans", team="risk")
        catalog.model_update(model=model, actor=maya, description="Scores loan applications", tags=["tabular"])
        catalog.model_archive(model=model, actor=maya)
    login(noor.username)
    page.goto(f"{portal_server}/audit/")
    assert page.locator("#bookkeeping-toggle").inner_text().startswith("Show system bookkeeping (")
    assert page.locator(".audit-bookkeeping-group").count() >= 1
    screenshot(page, "audit-folded")
    page.click("#bookkeeping-toggle")
    assert page.locator("text=granted view on model 'credit-risk' to team Risk Analytics").is_visible()
    screenshot(page, "audit-with-bookkeeping")
