import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from apps.accounts.models import Team
from apps.core.permissions import can, require, restrict, share, unshare, visible_one

pytestmark = pytest.mark.django_db


@pytest.fixture
def some_team(db):
    from apps.accounts.services import team_create

    return team_create(name="Shared thing", slug="shared-thing")


def test_deny_by_default(stranger, some_team):
    assert not restrict(stranger, "view", Team.objects.all()).exists()
    with pytest.raises(Http404):
        visible_one(stranger, Team.objects.all(), pk=some_team.pk)


def test_share_with_user_as_viewer_then_editor(collaborator, some_team):
    share(some_team, role="viewer", user=collaborator)
    assert list(restrict(collaborator, "view", Team.objects.all())) == [some_team]
    assert not can(collaborator, "change", some_team)
    with pytest.raises(PermissionDenied):
        require(collaborator, "change", some_team)
    share(some_team, role="editor", user=collaborator)
    collaborator = type(collaborator).objects.get(pk=collaborator.pk)  # fresh permission cache
    assert can(collaborator, "change", some_team)
    unshare(some_team, user=collaborator)
    collaborator = type(collaborator).objects.get(pk=collaborator.pk)
    assert not restrict(collaborator, "view", Team.objects.all()).exists()


def test_share_with_team_reaches_its_members(owner, collaborator, team, some_team):
    share(some_team, role="viewer", team=team)
    assert some_team in restrict(collaborator, "view", Team.objects.all())


def test_anonymous_and_inactive_see_nothing(owner, some_team):
    from django.contrib.auth.models import AnonymousUser

    share(some_team, role="viewer", user=owner)
    assert not restrict(AnonymousUser(), "view", Team.objects.all()).exists()
    owner.is_active = False
    assert not restrict(owner, "view", Team.objects.all()).exists()


def test_restrict_is_one_query(collaborator, some_team, django_assert_max_num_queries):
    share(some_team, role="viewer", user=collaborator)
    collaborator = type(collaborator).objects.get(pk=collaborator.pk)
    collaborator.has_perm("accounts.view_team")  # warm the user's global permission cache
    with django_assert_max_num_queries(2):
        assert len(list(restrict(collaborator, "view", Team.objects.all()))) == 1


def test_share_needs_exactly_one_target(some_team, owner, team):
    with pytest.raises(ValueError):
        share(some_team, role="viewer")
    with pytest.raises(ValueError):
        share(some_team, role="viewer", user=owner, team=team)
    with pytest.raises(ValueError):
        share(some_team, role="admin", user=owner)
