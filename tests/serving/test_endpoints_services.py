"""apps/serving/services/endpoints.py: create, update, archive; route rules; audit; permissions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.core.errors import Conflict, Forbidden, NotFound
from apps.core.models import AuditEntry
from apps.core.permissions import can
from apps.serving.models import Canary, Endpoint, Route
from apps.serving.services.endpoints import endpoint_archive, endpoint_create, endpoint_update
from tests.conftest import make_user, share_as
from tests.serving.conftest import version_of

pytestmark = pytest.mark.django_db

MAIN = {"name": "main", "model": "fraud-score", "alias": "staging", "weight": 100, "mode": "live"}


def create(actor, **overrides) -> Endpoint:
    return endpoint_create(actor=actor, **{"name": "svc", "routes": [MAIN], **overrides})


def errors_of(excinfo) -> dict:
    return excinfo.value.message_dict


def test_create_grants_owner_and_audits_with_routes(owner, scorer):
    endpoint = create(owner)
    assert can(owner, "delete", endpoint)
    entry = AuditEntry.objects.filter(additional_data__event="endpoint.create").get()
    assert entry.actor == owner and entry.object_pk == str(endpoint.pk)
    assert entry.additional_data["after"]["routes"] == [
        {"name": "main", "model": "fraud-score", "version": None, "alias": "staging", "weight": 100, "mode": "live"}
    ]


def test_create_needs_the_ml_engineer_role(db, scorer):
    with pytest.raises(Forbidden):
        create(make_user("nobody"))


def test_create_for_a_team_shares_it_as_viewer(owner, collaborator, team, scorer):
    endpoint = create(owner, team=team.slug)
    assert can(collaborator, "view", endpoint) and not can(collaborator, "change", endpoint)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ([], "at least one route"),
        ([{**MAIN, "mode": "shadow"}], "at least one live route"),
        ([MAIN, {**MAIN, "weight": 0}], "unique per endpoint"),
        ([{**MAIN, "version": 1}], "exactly one of version and alias"),
        ([{**MAIN, "alias": "", "version": 9}], "no version 9"),
        ([{**MAIN, "alias": "production"}], "no alias 'production'"),
        ([{**MAIN, "weight": 101}], "from 0 to 100"),
        ([{**MAIN, "mode": "dark"}], "mode must be one of"),
        ([{**MAIN, "name": "Bad Name"}], "name 'Bad Name'"),
        ([{**MAIN, "weight": 60}, {**MAIN, "name": "b", "weight": 30}], "sum to 90"),
    ],
)
def test_route_rules(owner, scorer, routes, message):
    with pytest.raises(ValidationError) as excinfo:
        create(owner, routes=routes)
    assert message in " ".join(errors_of(excinfo)["routes"])
    assert not Endpoint.objects.exists()


def test_shadow_weight_is_outside_the_live_sum(owner, scorer):
    shadow = {"name": "copy", "model": "fraud-score", "version": 2, "weight": 30, "mode": "shadow"}
    endpoint = create(owner, routes=[MAIN, shadow])
    assert sorted(endpoint.routes.values_list("name", "weight", "mode")) == [
        ("copy", 30, "shadow"),
        ("main", 100, "live"),
    ]


def test_reserved_and_taken_names_are_refused(owner, scorer):
    with pytest.raises(ValidationError) as excinfo:
        create(owner, name="new")
    assert "reserved" in errors_of(excinfo)["name"][0]
    create(owner)
    with pytest.raises(ValidationError) as excinfo:
        create(owner)
    assert "already exists" in errors_of(excinfo)["name"][0]


def test_a_model_shared_with_the_actor_may_be_routed_but_not_a_hidden_one(owner, stranger, scorer):
    with pytest.raises(ValidationError) as excinfo:
        create(stranger, name="theirs")
    assert "that you can see" in errors_of(excinfo)["routes"][0]
    share_as(scorer, stranger)
    assert create(stranger, name="theirs").owner == stranger


def test_update_keeps_rows_of_kept_names_deletes_dropped_and_audits(owner, scorer):
    endpoint = create(owner, routes=[{**MAIN, "weight": 50}, {**MAIN, "name": "old", "weight": 50}])
    main = Route.objects.get(endpoint=endpoint, name="main")
    new = [{**MAIN, "weight": 70}, {"name": "v2", "model": "fraud-score", "version": 2, "weight": 30}]
    endpoint_update(actor=owner, endpoint=endpoint, routes=new, description="now")
    assert list(Route.objects.filter(endpoint=endpoint).values_list("name", "weight")) == [("main", 70), ("v2", 30)]
    assert Route.objects.get(endpoint=endpoint, name="main").pk == main.pk
    entry = AuditEntry.objects.filter(additional_data__event="endpoint.update").get()
    assert [r["name"] for r in entry.additional_data["before"]["routes"]] == ["main", "old"]
    assert [r["name"] for r in entry.additional_data["after"]["routes"]] == ["main", "v2"]
    assert entry.additional_data["after"]["description"] == "now"


def test_update_refuses_unknown_fields_and_bad_sample_rate(owner, scorer):
    endpoint = create(owner)
    with pytest.raises(ValidationError) as excinfo:
        endpoint_update(actor=owner, endpoint=endpoint, name="renamed")
    assert "name" in errors_of(excinfo)
    with pytest.raises(ValidationError):
        endpoint_update(actor=owner, endpoint=endpoint, log_sample_rate=1.5)


def test_update_needs_change_viewer_forbidden_stranger_not_found(owner, viewer, stranger, scorer):
    endpoint = create(owner)
    share_as(endpoint, viewer)
    with pytest.raises(Forbidden):
        endpoint_update(actor=viewer, endpoint=endpoint, description="x")
    with pytest.raises(NotFound):
        endpoint_update(actor=stranger, endpoint=endpoint, description="x")


def _running_canary(endpoint, owner, scorer) -> Canary:
    now = timezone.now()
    return Canary.objects.create(
        endpoint=endpoint, version=version_of(scorer, 2), baseline_route="main", steps=[50, 100],
        step_interval_s=60, started_by=owner, step_started_at=now, next_evaluation_at=now,
    )  # fmt: skip


def test_route_change_during_a_canary_is_a_conflict_but_the_same_routes_are_not(owner, scorer):
    endpoint = create(owner)
    _running_canary(endpoint, owner, scorer)
    with pytest.raises(Conflict, match="canary/abort"):
        endpoint_update(actor=owner, endpoint=endpoint, routes=[{**MAIN, "alias": "", "version": 2}])
    endpoint_update(actor=owner, endpoint=endpoint, routes=[MAIN], log_sample_rate=0.5)
    endpoint.refresh_from_db()
    assert endpoint.log_sample_rate == 0.5


def test_archive_is_the_owners_and_audited(owner, editor, scorer):
    endpoint = create(owner)
    share_as(endpoint, editor, role="editor")
    with pytest.raises(Forbidden):
        endpoint_archive(actor=editor, endpoint=endpoint)
    endpoint_archive(actor=owner, endpoint=endpoint)
    endpoint.refresh_from_db()
    assert endpoint.archived_at is not None
    assert AuditEntry.objects.filter(additional_data__event="endpoint.archive").count() == 1
    with pytest.raises(Conflict):
        endpoint_update(actor=owner, endpoint=endpoint, description="x")


def test_seed_makes_the_demo_endpoint_once(owner, mlp_onnx):
    import io

    from apps.catalog import services as catalog
    from apps.serving import seed
    from tests.serving.conftest import register

    model = catalog.model_create(actor=owner, name="breast-cancer-mlp")
    register(model, owner, mlp_onnx[0])
    catalog.alias_move(model=model, alias="staging", version=register(model, owner, mlp_onnx[1]), actor=owner)
    out = io.StringIO()
    seed.seed(users={"engineer": owner}, team=None, out=out)
    seed.seed(users={"engineer": owner}, team=None, out=out)
    endpoint = Endpoint.objects.get(name="fraud-demo")
    assert list(endpoint.routes.values_list("name", "alias", "version__version", "mode")) == [
        ("main", "staging", None, "live"),
        ("challenger", "", 1, "shadow"),
    ]
    assert "fraud-demo on breast-cancer-mlp@staging (v2)" in out.getvalue() and "left alone" in out.getvalue()


def test_an_update_that_changes_nothing_records_nothing(owner, scorer):
    endpoint = create(owner)
    endpoint_update(actor=owner, endpoint=endpoint, routes=[MAIN], description="")
    assert not AuditEntry.objects.filter(additional_data__event="endpoint.update").exists()
