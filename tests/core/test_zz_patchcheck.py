import copy
import pytest
from django.conf import settings as dj
from tests.core import test_list_costs as t

@pytest.mark.django_db
@pytest.mark.parametrize("name", ["approvals:inbox", "approvals:request-list", "notifications:list"])
def test_patched(settings, monkeypatch, tmp_path, owner, collaborator, team, auditor, admin_user, name):
    tt = copy.deepcopy(dj.TEMPLATES)
    tt[0]["DIRS"] = ["/tmp/patched", *tt[0]["DIRS"]]
    settings.TEMPLATES = tt
    from django.template.loader import get_template
    print(get_template("approvals/_row.html").origin.name)
    w = t.world.__wrapped__(settings, monkeypatch, tmp_path, owner, collaborator, team, auditor, admin_user)
    t.test_list_cost_does_not_grow_with_rows.__wrapped__(w, name) if hasattr(t.test_list_cost_does_not_grow_with_rows, "__wrapped__") else t.test_list_cost_does_not_grow_with_rows(w, name)
