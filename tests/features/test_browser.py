"""The feature store in a real browser: the entity list and page, and a Distributions panel that draws
no PII values (a count card for the e-mail column, bars for the others)."""

from __future__ import annotations

import pytest

from apps.features import services
from tests.browser import screenshot
from tests.features.conftest import FEATURES, rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_entity_pages_and_a_distributions_panel_without_pii_values(portal_server, page, login, owner, settings):
    settings.FEATURE_STORE_ROOT = settings.VAR_DIR / "features"  # where the server process reads
    customer = services.entity_create(
        actor=owner, name="customer", join_keys=[{"name": "customer_id", "dtype": "int64"}],
        description="A bank customer, keyed by the core banking id.",
    )  # fmt: skip
    services.entity_create(actor=owner, name="merchant", join_keys=[{"name": "merchant_id", "dtype": "string"}])
    view = services.feature_view_create(actor=owner, name="customer-stats", entity=customer, features=FEATURES)
    services.feature_view_ingest(view=view, actor=owner, data=rows(n_keys=6, per_key=3))
    login("owner")

    page.goto(f"{portal_server}/features/")
    page.click("text=Entities")
    page.wait_for_url(f"{portal_server}/features/entities/")
    assert page.locator("#entities tr[data-entity=customer]").inner_text().count("customer-stats") == 1
    screenshot(page, "features-entity-list")

    page.click("#entities >> text=customer")
    page.wait_for_url(f"{portal_server}/features/entities/customer/")
    assert "customer_id int64" in page.locator("#join-keys").inner_text()
    assert page.locator("#entity-views >> text=customer-stats").is_visible()
    assert page.locator("#sharing").is_visible()
    screenshot(page, "features-entity-page")

    page.goto(f"{portal_server}/features/customer-stats/")
    page.wait_for_selector("#charts [data-pii=email]")
    charts = page.locator("#charts").inner_text()
    assert "@example.com" not in charts and "values are never charted" in charts
    page.wait_for_selector("#charts .js-plotly-plot")
    page.locator("#charts").scroll_into_view_if_needed()
    screenshot(page, "features-distributions")
