"""The catalog's version and model pages in a real browser: parity, formatted numbers, no wrapping."""

from __future__ import annotations

import io

import pytest

from apps.accounts import roles
from apps.catalog import services
from tests.browser import screenshot
from tests.catalog.test_version_parity_and_format import ENGINE_SUMMARY
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_version_page_shows_parity_and_formatted_values(portal_server, page, login, onnx_bytes, weights_bytes):
    maya = make_user("maya", roles.ML_ENGINEERS)
    model = services.model_create(actor=maya, name="credit-risk", description="Scores loan applications")
    for auc in (0.8712345678901234, 0.9123456789012345):
        version = services.version_register(
            model=model,
            actor=maya,
            artifact=io.BytesIO(onnx_bytes),
            artifact_size=len(onnx_bytes),
            state_dict=io.BytesIO(weights_bytes),
            state_dict_size=len(weights_bytes),
            metrics={"auc": auc, "epoch": 8.0, "lr": 3.806e-05, "val_loss": 0.31234567},
            lineage={"run_id": "12", "training_set": "loans-2024", "seed": 7},
            onnx_parity=ENGINE_SUMMARY,
        )
    login("maya")
    page.goto(f"{portal_server}/models/credit-risk/versions/{version.version}/")
    parity = page.locator("#onnx-parity").inner_text()
    assert "4.77e-06 (limit 1e-4)" in parity
    assert page.locator("text=3.81e-05").first.is_visible()
    screenshot(page, "catalog-version-parity")
    page.goto(f"{portal_server}/models/credit-risk/")
    assert page.locator("text=auc=0.9123").first.is_visible()
    screenshot(page, "catalog-model-page")
    page.goto(f"{portal_server}/models/")
    screenshot(page, "catalog-model-list")
