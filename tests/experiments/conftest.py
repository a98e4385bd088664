"""Experiments fixtures (personas live in tests/conftest.py)."""

import pytest


@pytest.fixture
def stale_after(settings):
    """EXPERIMENTS_STALE_AFTER_S for the test: a run silent for 15 minutes is stale."""
    settings.EXPERIMENTS_STALE_AFTER_S = 900
    return 900
