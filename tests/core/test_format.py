"""Page formatting filters."""

from __future__ import annotations

import pytest

from apps.core import format as fmt
from apps.core.templatetags.portal_format import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(7776000, "90 days"), (86400, "1 day"), (90061, "1 day 1 h"), (5400, "1 h 30 min"), (45, "45 s"), (0, "0 s"),
     (-5, "0 s"), (None, ""), ("soon", "")],
)  # fmt: skip
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(8.0, "8"), (12000, "12,000"), (0.912345, "0.9123"), (3.806e-05, "3.81e-05"), (1234.5678, "1,235"),
     (12.3456, "12.35"), (None, "—"), ("x", "x"), (float("nan"), "NaN"), (-0.5, "-0.5"), (2.5e15, "2.50e+15"), (2.5e12, "2,500,000,000,000")],
)  # fmt: skip
def test_numbers_read_by_magnitude(value, text):
    assert fmt.num(value) == text


def test_sizes_money_and_dates():
    import datetime as dt

    assert fmt.size(512) == "512 bytes" and fmt.size(1536) == "1.5 KB" and fmt.size(3 * 1024**3) == "3 GB"
    assert fmt.money(0.4213) == "$0.42" and fmt.money(1234.5) == "$1,234.50" and fmt.money(0.001) == "<$0.01"
    assert fmt.money(2, "AED") == "2.00 AED"
    assert fmt.when(dt.datetime(2026, 11, 30, 14, 5, tzinfo=dt.UTC)) == "30 Nov 2026, 14:05 UTC"
    assert fmt.when("2026-01-02T03:04:05Z", with_time=False) == "2 Jan 2026"
    assert fmt.when(None) == "—"
    assert fmt.duration(0.25) == "0.25 s"


def test_naive_datetimes_read_as_utc():
    import datetime as dt

    assert fmt.when(dt.datetime(2026, 1, 2, 3, 4)) == "2 Jan 2026, 03:04 UTC"
