import io

import pytest

from apps.catalog.models import Alias, RegisteredModel
from apps.catalog.seed import seed
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_seed_trains_registers_and_is_idempotent(team):
    users = {"engineer": make_user("engineer", "ml-engineers"), "engineer2": make_user("engineer2", "ml-engineers")}
    users["engineer"].groups.add(team.group)
    out = io.StringIO()
    seed(users=users, team=team, out=out)
    cancer = RegisteredModel.objects.get(name="breast-cancer-mlp")
    assert cancer.latest_version == 2 and cancer.card.is_complete
    best = cancer.versions.get(version=2)
    assert best.metrics["accuracy"] > 0.9 and best.state_dict is not None
    assert Alias.objects.get(model=cancer, name="staging").version == best
    seed(users=users, team=team, out=out)
    assert RegisteredModel.objects.get(name="breast-cancer-mlp").latest_version == 2
