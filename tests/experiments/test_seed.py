import io

import pytest

from apps.experiments.dashboard import cards
from apps.experiments.models import Experiment, MetricPoint, Run
from apps.experiments.seed import EXPERIMENT, seed

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent_and_realistic(owner, team, stale_after):
    out = io.StringIO()
    seed(users={"engineer": owner}, team=team, out=out)
    seed(users={"engineer": owner}, team=team, out=out)
    experiment = Experiment.objects.get(name=EXPERIMENT)
    runs = Run.objects.filter(experiment=experiment)
    assert runs.count() == 5
    assert set(runs.values_list("status", flat=True)) == {"finished", "failed", "running"}
    best = runs.order_by("-metric_summaries__last").filter(metric_summaries__key="val_acc").first()
    assert 0.5 < best.metric_summaries.get(key="val_acc").last < 1
    assert MetricPoint.objects.filter(run__experiment=experiment, key="system/cpu_percent").exists()


def test_seed_holds_no_run_that_pretends_to_be_live(owner, team, stale_after):
    seed(users={"engineer": owner}, team=team, out=io.StringIO())
    half_done = Run.objects.get(experiment__name=EXPERIMENT, name="adamw-cosine")
    assert half_done.status == "running" and half_done.stale  # its client went silent: shown as such
    assert not Run.objects.filter(status="running", stale=False).exists()
    assert cards(owner)[0]["detail"] == "0 runs training now"
