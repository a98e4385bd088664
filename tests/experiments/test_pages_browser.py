"""In a real browser against a real server: the run page's Latest metrics are right from the first
paint and stay right as points stream in, and the experiment, run and compare pages read well
(screenshots under PORTAL_SCREENSHOTS)."""

import io

import pytest

from apps.accounts.services import token_create
from apps.experiments.models import Experiment, Run
from apps.experiments.seed import EXPERIMENT, seed
from portal_client import PortalClient
from tests.browser import screenshot, wait_for_js

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.browser]
LATEST = "(key) => { const r = document.querySelector(`#latest tr[data-key='${key}']`); return r ? [...r.children].slice(1).map((c) => c.textContent) : null; }"


def test_latest_metrics_min_and_max_count_points_logged_before_the_page_connected(
    portal_server, owner, team, page, login, settings
):
    _, key = token_create(user=owner, name="script", scopes=["read", "write"], expires_days=1)
    client = PortalClient(portal_server, key, retries=0)
    live = client.start_run("browser-demo", name="epochs")
    login("owner")
    page.goto(f"{portal_server}/runs/{live.id}/")
    page.wait_for_selector("#live-state.text-bg-success")
    # The first points reach a page that has no row and no chart for the key yet: the row must
    # still count them (the page used to start min/max from the next live point).
    client.log_batch(live.id, metrics=[{"key": "epoch", "step": s, "value": float(s)} for s in range(1, 6)])
    wait_for_js(page, f"({LATEST})('epoch') !== null && ({LATEST})('epoch')[0] === '5'")
    client.log_batch(live.id, metrics=[{"key": "epoch", "step": s, "value": float(s)} for s in range(6, 9)])
    wait_for_js(page, f"({LATEST})('epoch')[0] === '8'")
    assert page.evaluate(f"({LATEST})('epoch')") == ["8", "1", "8"]
    page.reload()  # first paint
    assert page.evaluate(f"({LATEST})('epoch')") == ["8", "1", "8"]
    live.finish()

    settings.EXPERIMENTS_STALE_AFTER_S = 900
    seed(users={"engineer": owner}, team=team, out=io.StringIO())
    experiment = Experiment.objects.get(name=EXPERIMENT)
    page.goto(f"{portal_server}/experiments/{experiment.pk}/")
    assert page.locator("#runs-table .run-stale").count() == 1
    screenshot(page, "experiments-table")
    page.click("button[data-bs-target='#columns']")
    page.uncheck("#columns input[value='loss']")
    page.click("#save-columns")
    page.wait_for_selector("text=Columns saved for this experiment.")
    assert "loss" not in page.locator("#runs-table thead").inner_text().split()
    screenshot(page, "experiments-columns-saved")
    stale = Run.objects.get(experiment=experiment, name="adamw-cosine")
    page.goto(f"{portal_server}/runs/{stale.pk}/")
    page.wait_for_selector("#charts .js-plotly-plot")
    assert page.locator("#run-status .run-stale").count() == 1
    assert "Runs are shared with their experiment" in page.locator("#run-sharing").inner_text()
    screenshot(page, "experiments-run-stale")
    picks = list(Run.objects.filter(experiment=experiment).order_by("pk").values_list("pk", flat=True))
    page.goto(f"{portal_server}/experiments/{experiment.pk}/compare/?" + "&".join(f"runs={pk}" for pk in picks))
    wait_for_js(page, "document.querySelector('#curves').data && document.querySelector('#curves').data.length === 5")
    assert page.locator("#compare-table tr.differs").count() >= 2
    screenshot(page, "experiments-compare-table")
