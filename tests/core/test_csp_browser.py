"""The Content Security Policy in a real browser (issue 17): chart pages draw, the data- behaviours
that replaced inline handlers work, the API viewers render, and the browser reports no violation."""

from __future__ import annotations

import io

import pytest

from apps.accounts import roles
from apps.catalog import services
from tests.access.objects import onnx_bytes, safetensors_bytes
from tests.browser import SCREENSHOTS, screenshot
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Every violation the page reports, whichever directive: an exposed function outlives navigations.
WATCH = """
document.addEventListener("securitypolicyviolation", (e) => window.reportViolation(
  `${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def violations(page):
    found: list[str] = []
    page.context.expose_function("reportViolation", lambda text: found.append(text))
    page.context.add_init_script(WATCH)
    page.on("console", lambda m: found.append(f"console: {m.text}") if "Content Security Policy" in m.text else None)
    return found


def model_with_versions(owner):
    model = services.model_create(actor=owner, name="credit-risk", description="Scores loan applications")
    onnx, weights = onnx_bytes(), safetensors_bytes()
    for auc in (0.87, 0.91):
        services.version_register(
            model=model,
            actor=owner,
            artifact=io.BytesIO(onnx),
            artifact_size=len(onnx),
            state_dict=io.BytesIO(weights),
            state_dict_size=len(weights),
            metrics={"auc": auc, "val_loss": 1 - auc},
        )
    return model


def test_chart_page_draws_and_its_controls_work_under_the_policy(portal_server, page, login, violations):
    maya = make_user("maya", roles.ML_ENGINEERS)
    model = model_with_versions(maya)
    login("maya")
    page.goto(f"{portal_server}/models/credit-risk/")
    page.wait_for_selector("#metric-chart .main-svg")  # Plotly drew the chart
    assert page.locator("#metric-chart .scatterlayer .trace").count() == 1
    # plotly.css applied (the modebar is positioned by it, not by an injected <style>)
    assert page.locator("#metric-chart .modebar-container").evaluate("e => getComputedStyle(e).position") == "absolute"
    screenshot(page, "csp-model-chart")

    # data-autosubmit: choosing another metric reloads the chart for it
    page.select_option("#metric", "val_loss")
    page.wait_for_url("**metric=val_loss**")
    page.wait_for_selector("#metric-chart .main-svg")

    # data-confirm: dismissing the question keeps the model; accepting archives it
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button:has-text('Archive')")
    page.wait_for_timeout(300)
    model.refresh_from_db()
    assert model.archived_at is None
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("button:has-text('Archive')")
    model.refresh_from_db()
    assert model.archived_at is not None
    assert violations == []


def test_progress_width_comes_from_data_width(portal_server, page, login, violations):
    make_user("maya", roles.ML_ENGINEERS)
    login("maya")
    page.goto(f"{portal_server}/")
    page.evaluate(
        """() => { const bar = document.createElement("div"); bar.id = "probe"; bar.setAttribute("data-width", "40");
        document.body.appendChild(bar); htmx.process(bar); document.body.dispatchEvent(new CustomEvent("htmx:load",
        {detail: {elt: bar}})); bar.dispatchEvent(new CustomEvent("htmx:load", {bubbles: true})); }"""
    )
    assert page.locator("#probe").evaluate("e => e.style.width") == "40%"
    assert violations == []


def test_api_viewers_render_under_the_policy(portal_server, page, login, violations):
    make_user("maya", roles.ML_ENGINEERS)
    login("maya")
    page.goto(f"{portal_server}/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "MLOps Portal API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".swagger-ui .opblock")  # the operations, from the schema the init script fetched
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "csp-swagger.png"))  # the first screen: the whole page is huge
    page.goto(f"{portal_server}/api/v1/redoc/")
    page.wait_for_selector("h1:has-text('MLOps Portal API')", timeout=30000)
    page.screenshot(path=str(SCREENSHOTS / "csp-redoc.png"))  # the first screen: the whole page is huge
    page.fill("input[placeholder='Search...']", "token")  # the search index runs in its blob: worker
    page.wait_for_selector("[data-role='search:results']")
    page.wait_for_timeout(1000)
    # ReDoc 2 hard-codes its "API docs by Redocly" logo from cdn.redoc.ly: the policy blocks it, as an
    # air-gapped portal must, and the browser says so; nothing else may be reported.
    assert [v for v in violations if "cdn.redoc.ly/redoc/logo-mini.svg" not in v] == []
