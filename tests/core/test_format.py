"""Page formatting filters."""

from __future__ import annotations

import pytest

from apps.core.templatetags.portal_format import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(7776000, "90 days"), (86400, "1 day"), (90061, "1 day 1 h"), (5400, "1 h 30 min"), (45, "45 s"), (0, "0 s"),
     (-5, "0 s"), (None, ""), ("soon", "")],
)  # fmt: skip
def test_duration(seconds, text):
    assert duration(seconds) == text
