"""List queries compiled once per shape (apps/core/sqltemplates.py) answer exactly what the ORM
query they were built from answers, for every caller and filter, and are compiled once."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.accounts import roles
from apps.catalog import selectors, services
from apps.catalog.models import Alias, RegisteredModel
from apps.core import sqltemplates
from apps.core.permissions import share
from apps.notifications.models import Notification
from apps.notifications.selectors import notifications_of, unread_count
from tests.catalog.conftest import add_versions
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

NAMES = ["alpha", "beta_1", "gamma%", "delta", "Epsilon", "zeta"]


@pytest.fixture
def catalog(owner, collaborator, team, version):
    """Models with tricky names, shared in every way a list must honour."""
    made = {}
    for i, name in enumerate(NAMES):
        model = services.model_create(
            actor=owner, name=f"m-{i}-{name.lower().replace('%', 'pct').replace('_', '-')}",
            description=f"about {name}", tags=["shared" if i % 2 else "own", f"t{i % 3}"],
        )  # fmt: skip
        made[name] = model
    add_versions(made["alpha"], owner, version.artifact, 2)  # aliases on one model
    share(made["beta_1"], role="viewer", user=collaborator)
    share(made["delta"], role="editor", team=team)
    services.model_archive(model=made["zeta"], actor=owner)
    return made


def _as_api_caller(user):
    """The same user as the caller cache hands it to a request: group ids known, no join needed."""
    fresh = get_user_model().objects.get(pk=user.pk)
    fresh._portal_group_ids = list(fresh.groups.values_list("pk", flat=True))
    return fresh


FILTERS = [
    {},
    {"archived": True},
    {"q": "gamma%"},  # a LIKE wildcard in the search text matches itself only
    {"q": "beta_"},
    {"q": "_"},
    {"q": "ABOUT"},
    {"tag": "shared"},
    {"tag": "T1", "sort": "-name"},
    {"owner": "owner"},
    {"owner": "nobody"},
    {"alias": "staging"},
    {"framework": "onnx"},
    {"sort": "updated"},
    {"sort": "versions", "archived": True},
    {"q": "a", "tag": "own", "owner": "owner", "sort": "-created"},
]


def _names(rows) -> list[str]:
    return [r.name for r in rows]


@pytest.mark.parametrize("who", ["owner", "collaborator", "stranger", "admin_user"])
def test_rows_equal_the_orm_query_for_every_caller_and_filter(request, catalog, who):
    user = request.getfixturevalue(who)
    for caller, filters in itertools.product((user, _as_api_caller(user)), FILTERS):
        expected = list(selectors.models_visible(caller, filters))
        rows = selectors.model_rows(caller, filters)
        assert rows.count() == len(expected), (who, filters)
        assert _names(rows[0:100]) == _names(expected), (who, filters)
        assert _names(rows[1:3]) == _names(expected[1:3]), (who, filters)


def test_row_values_equal_the_instances(catalog, owner):
    expected = {m.name: m for m in selectors.models_visible(owner, {"archived": True})}
    for row in selectors.model_rows(owner, {"archived": True})[0:50]:
        model = expected[row.name]
        assert (row.pk, row.description, row.tags, row.owner_username, row.team_slug) == (
            model.pk, model.description, model.tags, model.owner.username, model.team.slug if model.team else None,
        )  # fmt: skip
        assert (row.latest_version, row.latest_version_at, row.archived_at, row.created_at, row.updated_at) == (
            model.latest_version, model.latest_version_at, model.archived_at, model.created_at, model.updated_at,
        )  # fmt: skip


def test_aliases_of_a_page_of_rows(catalog, owner):
    rows = selectors.with_aliases(selectors.model_rows(owner, {})[0:50])
    by_name = {r.name: [(a.name, a.version) for a in r.alias_list] for r in rows}
    alpha = catalog["alpha"]
    assert by_name[alpha.name] == sorted(
        (a.name, a.version.version) for a in Alias.objects.filter(model=alpha).select_related("version")
    )
    assert all(not aliases for name, aliases in by_name.items() if name != alpha.name)


def test_a_shape_is_compiled_once_and_serves_other_callers(catalog, owner, team, monkeypatch):
    peer = make_user("peer", roles.ML_ENGINEERS, roles.DATA_STEWARDS)  # the owner's roles, in the team too
    peer.groups.add(team.group)
    share(catalog["gamma%"], role="viewer", user=peer)
    sqltemplates.clear()
    compiled = []
    real = sqltemplates._Compiled

    def counting(*args, **kwargs):
        compiled.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(sqltemplates, "_Compiled", counting)
    owner_c, peer_c = _as_api_caller(owner), _as_api_caller(peer)
    assert len(owner_c._portal_group_ids) == len(peer_c._portal_group_ids)  # the same shape
    first = _names(selectors.model_rows(owner_c, {"q": "a"})[0:51])
    assert len(compiled) == 1
    second = _names(selectors.model_rows(peer_c, {"q": "e"})[0:51])
    assert len(compiled) == 1, "the same shape with other values is not compiled again"
    assert first == _names(selectors.models_visible(owner, {"q": "a"}))
    assert second == _names(selectors.models_visible(peer, {"q": "e"})) != []
    selectors.model_rows(owner_c, {"q": "a", "sort": "-name"})[0:51]
    assert len(compiled) == 2, "another sort is another shape"


def test_no_access_runs_no_sql(catalog, django_assert_num_queries):
    from django.contrib.auth.models import AnonymousUser

    rows = selectors.model_rows(AnonymousUser(), {})
    with django_assert_num_queries(0):
        assert rows.count() == 0 and rows[0:10] == []


def test_a_marker_that_is_not_a_parameter_fails_loudly():
    p = sqltemplates.Params()
    p.int(7)  # never used by the query below
    with pytest.raises(sqltemplates.TemplateError, match="not SQL parameters"):
        sqltemplates.rows(("test.unused-marker",), p, lambda: RegisteredModel.objects.values_list("pk"))


def test_lazy_rows_refuse_what_paginators_never_ask(catalog, owner):
    rows = selectors.model_rows(owner, {})
    for bad in (0, slice(0, None), slice(0, 10, 2)):
        with pytest.raises(TypeError):
            rows[bad]


def test_unread_count_is_each_users_own(owner, collaborator):
    for user, n in ((owner, 3), (collaborator, 1)):
        for i in range(n):
            Notification.objects.create(recipient=user, kind="info", title=f"note {i}")
    Notification.objects.filter(pk=Notification.objects.filter(recipient=owner).order_by("pk")[0].pk).update(
        read_at=timezone.now()
    )
    assert unread_count(owner) == notifications_of(owner, unread=True).count() == 2
    assert unread_count(collaborator) == 1


def test_api_rows_from_compiled_rows_equal_rows_from_instances(catalog, owner):
    from apps.catalog.api.serializers import RegisteredModelSerializer

    for filters in ({}, {"archived": True}):
        instances = selectors.with_aliases(list(selectors.models_visible(owner, filters)))
        rows = selectors.with_aliases(selectors.model_rows(owner, filters)[0:50])
        assert RegisteredModelSerializer(rows, many=True).data == RegisteredModelSerializer(instances, many=True).data


def test_a_page_and_the_list_size_come_in_one_query(catalog, owner, stranger, django_assert_num_queries):
    from apps.core.paginator import Paginator

    expected = _names(selectors.models_visible(owner, {"archived": True}))
    assert len(expected) > 4
    rows = selectors.model_rows(owner, {"archived": True})
    with django_assert_num_queries(1):
        page = Paginator(rows, 2).get_page(2)
        assert page.paginator.count == len(expected) and _names(page) == expected[2:4]
    last = Paginator(selectors.model_rows(owner, {"archived": True}), 2).get_page(99)  # past the end: the last page
    assert last.number == last.paginator.num_pages and _names(last) == expected[(last.number - 1) * 2 :]
    nothing = selectors.model_rows(stranger, {})  # the stranger's permissions are read here
    with django_assert_num_queries(1):
        empty = Paginator(nothing, 2).get_page(1)
        assert empty.paginator.count == 0 and list(empty) == []


def test_the_api_list_counts_every_page(catalog, owner):
    from tests.conftest import api_client_for

    client = api_client_for(owner)
    expected = _names(selectors.models_visible(owner, {}))
    second = client.get("/api/v1/models/?page_size=2&page=2").json()
    assert second["count"] == len(expected) and [r["name"] for r in second["results"]] == expected[2:4]
    assert client.get("/api/v1/models/?page_size=2&page=99").status_code == 404
