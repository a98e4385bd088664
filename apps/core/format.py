"""One way to show values to people: numbers by magnitude, dates, durations, sizes and money.

Used by the template filters (`{% load portal_format %}`: `num`, `when`, `duration`, `size`,
`money`, `percent`) and by Python code that writes messages, so a page, a message and a CLI line
read the same. Every function takes what the database or an API holds (numbers, None, ISO strings)
and never raises for a bad value: it returns "—" (missing) or the value as text.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

MISSING = "—"
DURATION_UNITS = (("day", 86400), ("h", 3600), ("min", 60), ("s", 1))
SIZE_UNITS = ("bytes", "KB", "MB", "GB", "TB", "PB")
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def num(value, digits: int = 4) -> str:
    """A number as people read it: whole numbers with thousands separators (8.0 -> '8',
    12000 -> '12,000'), others to `digits` significant digits (0.912345 -> '0.9123'), tiny or
    huge ones in scientific notation (3.806e-05 -> '3.81e-05'); never '8.0000'."""
    number = _number(value)
    if number is None:
        return MISSING if value is None or value == "" else str(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    magnitude = abs(number)
    if magnitude < 1e-3 or magnitude >= 1e9:
        return f"{number:.{max(digits - 2, 1)}e}"
    decimals = max(digits - 1 - int(math.floor(math.log10(magnitude))), 0)
    text = f"{number:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(value, digits: int = 1) -> str:
    """A fraction or a percentage number as '42.5 %' (values above 1 are taken as percent already)."""
    number = _number(value)
    if number is None:
        return MISSING
    share = number * 100 if abs(number) <= 1 else number
    return f"{share:.{digits}f} %".replace(".0 %", " %") if digits else f"{share:.0f} %"


def when(value, *, with_time: bool = True) -> str:
    """A moment as '30 Nov 2026, 14:05 UTC' (in the portal's time zone), or a date as '30 Nov 2026'."""
    if value in (None, ""):
        return MISSING
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, datetime):
        if timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)
        local = timezone.localtime(value)
        if not with_time:
            return f"{local.day} {local:%b %Y}"
        return f"{local.day} {local:%b %Y, %H:%M} {local.tzname() or ''}".rstrip()
    if isinstance(value, date):
        return f"{value.day} {value:%b %Y}"
    return str(value)


def duration(seconds) -> str:
    """7776000 -> '90 days', 5400 -> '1 h 30 min', 45 -> '45 s', 0.25 -> '0.25 s' (the two largest units)."""
    number = _number(seconds)
    if number is None or math.isnan(number) or math.isinf(number):
        return ""
    if number <= 0:
        return "0 s"
    if number < 10 and number != int(number):
        return f"{num(number, 2)} s"
    left = int(round(number))
    parts = []
    for name, size in DURATION_UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count} {name}{'s' if name == 'day' and count != 1 else ''}")
    return " ".join(parts[:2])


def size(value) -> str:
    """Bytes as '512 bytes', '1.5 MB', '2.1 GB' (powers of 1,024, as file managers show them)."""
    number = _number(value)
    if number is None or number < 0:
        return MISSING
    unit = 0
    while number >= 1024 and unit < len(SIZE_UNITS) - 1:
        number /= 1024
        unit += 1
    if unit == 0:
        return f"{int(number):,} byte{'s' if int(number) != 1 else ''}"
    return f"{number:.1f} {SIZE_UNITS[unit]}".replace(".0 ", " ")


def money(value, currency: str | None = None) -> str:
    """An amount with its currency: '$0.42', '$1,234.50'; amounts under a cent as '<$0.01'."""
    number = _number(value)
    if number is None:
        return MISSING
    code = (currency or settings.COST_CURRENCY).upper()
    symbol = CURRENCY_SYMBOLS.get(code)
    if 0 < abs(number) < 0.01:
        text = f"<{symbol or ''}0.01" + ("" if symbol else f" {code}")
        return text
    amount = f"{abs(number):,.2f}"
    sign = "-" if number < 0 else ""
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {code}"
