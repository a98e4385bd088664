"""Validation of what scripts send to log-batch: limits, key names, types, non-finite values.

Everything is checked before anything is written, so a rejected batch leaves no trace.
Errors name the field and the index of the offending item, e.g. {"metrics": ["item 3: ..."]}.
"""

from __future__ import annotations

import math
import re
import time
from typing import NamedTuple

from django.core.exceptions import ValidationError

MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 5000
MAX_STEP = 2**62
MAX_TIMESTAMP = 2**53
FIELDS = frozenset({"key", "value", "step", "timestamp"})
# +/-inf are stored as the largest finite double (PostgreSQL and SQLite agree on it); NaN as NULL.
FLOAT_MAX = 1.7976931348623157e308
KEY_RE = re.compile(r"^[A-Za-z0-9_\-./: ]+$")
KEY_HELP = "Keys may use letters, digits, spaces and _ - . / : (at most 250 characters)."
NONFINITE = {"nan": None, "inf": FLOAT_MAX, "infinity": FLOAT_MAX, "-inf": -FLOAT_MAX, "-infinity": -FLOAT_MAX}


class Point(NamedTuple):
    key: str
    step: int
    value: float | None  # None = NaN
    timestamp: int  # ms since epoch


def now_ms() -> int:
    return int(time.time() * 1000)


def check_key(key: object) -> str | None:
    """The error for a bad key, or None."""
    if not isinstance(key, str) or not key:
        return "key must be a non-empty string"
    if len(key) > MAX_KEY_LENGTH:
        return f"key is longer than {MAX_KEY_LENGTH} characters"
    if not KEY_RE.match(key) or key.strip() != key or ".." in key or key.startswith("/"):
        return f"key {key[:60]!r} is not allowed. {KEY_HELP}"
    return None


def parse_value(raw: object) -> tuple[float | None, str | None]:
    """A metric value: a JSON number, or the strings "NaN", "Infinity", "-Infinity" (any case)."""
    if isinstance(raw, bool):
        return None, "value must be a number, not true/false"
    if isinstance(raw, int | float):
        value = float(raw)
        if math.isnan(value):
            return None, None
        if math.isinf(value):
            return (FLOAT_MAX if value > 0 else -FLOAT_MAX), None
        return value, None
    if isinstance(raw, str) and raw.strip().lower() in NONFINITE:
        return NONFINITE[raw.strip().lower()], None
    return None, 'value must be a number or one of "NaN", "Infinity", "-Infinity"'


def _check_int(raw: object, name: str, lo: int, hi: int) -> tuple[int | None, str | None]:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or (isinstance(raw, float) and not raw.is_integer()):
        return None, f"{name} must be an integer"
    value = int(raw)
    if not lo <= value <= hi:
        return None, f"{name} must be between {lo} and {hi}"
    return value, None


def clean_metrics(items: object) -> list[Point]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValidationError({"metrics": ["Send a list of {key, value, step, timestamp} objects."]})
    if len(items) > MAX_METRICS:
        raise ValidationError(
            {"metrics": [f"At most {MAX_METRICS} metric points per call; got {len(items)}. Split the batch."]}
        )
    points: list[Point] = []
    append = points.append
    good_keys: set[str] = set()
    default_ts = now_ms()
    # Fast path for the common shape (known fields, valid key, float/int value, int step and
    # timestamp in range); anything else goes through _check_point, which names the problem.
    for i, item in enumerate(items):
        if type(item) is dict and item.keys() <= FIELDS:
            key, value, step, ts = item.get("key"), item.get("value"), item.get("step", 0), item.get("timestamp")
            if ts is None:
                ts = default_ts
            if (
                type(key) is str  # a dict or list key is not hashable: _check_point names the problem
                and (key in good_keys or (check_key(key) is None and not good_keys.add(key)))
                and type(step) is int
                and 0 <= step <= MAX_STEP
                and type(ts) is int
                and 0 <= ts <= MAX_TIMESTAMP
            ):
                vt = type(value)
                if vt is float and -FLOAT_MAX <= value <= FLOAT_MAX:
                    append(Point(key, step, value, ts))
                    continue
                if vt is int and -FLOAT_MAX <= value <= FLOAT_MAX:
                    append(Point(key, step, float(value), ts))
                    continue
        point, problem = _check_point(item, default_ts)
        if problem:
            raise ValidationError({"metrics": [f"item {i}: {problem}"] + _more_problems(items, i + 1, default_ts)})
        append(point)
    return points


def _more_problems(items: list, start: int, default_ts: int, limit: int = 19) -> list[str]:
    problems = []
    for i in range(start, len(items)):
        _, problem = _check_point(items[i], default_ts)
        if problem:
            problems.append(f"item {i}: {problem}")
            if len(problems) >= limit:
                break
    return problems


def _check_point(item: object, default_ts: int) -> tuple[Point | None, str | None]:
    if not isinstance(item, dict):
        return None, "must be an object with key, value and step"
    unknown = set(item) - FIELDS
    if unknown:
        return None, f"unknown field(s) {', '.join(sorted(unknown))}"
    problem = check_key(item.get("key"))
    if problem:
        return None, problem
    if "value" not in item:
        return None, "value is required"
    value, problem = parse_value(item["value"])
    if problem:
        return None, problem
    step, problem = _check_int(item.get("step", 0), "step", 0, MAX_STEP)
    if problem:
        return None, problem
    ts = item.get("timestamp")
    if ts is None:
        ts = default_ts
    else:
        ts, problem = _check_int(ts, "timestamp (ms since epoch)", 0, MAX_TIMESTAMP)
        if problem:
            return None, problem
    return Point(item["key"], step, value, ts), None


def _clean_mapping(items: object, field: str, limit: int, max_value: int) -> dict[str, str]:
    """Params and tags: a {"key": value} object or a list of {"key", "value"} objects."""
    if items is None:
        return {}
    if isinstance(items, dict):
        pairs = list(items.items())
    elif isinstance(items, list):
        pairs = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or set(item) != {"key", "value"}:
                raise ValidationError({field: [f"item {i}: must be an object with exactly key and value"]})
            pairs.append((item["key"], item["value"]))
    else:
        raise ValidationError({field: ['Send an object {"name": value} or a list of {key, value} objects.']})
    if len(pairs) > limit:
        raise ValidationError({field: [f"At most {limit} {field} per call; got {len(pairs)}."]})
    errors, cleaned = [], {}
    for key, raw in pairs:
        problem = check_key(key)
        if problem is None:
            if isinstance(raw, bool):
                raw = "true" if raw else "false"
            if isinstance(raw, float) and not math.isfinite(raw):
                problem = "non-finite numbers are not allowed here; send a string"
            elif isinstance(raw, str | int | float):
                raw = str(raw)
                too_long = len(raw) > max_value
                problem = f"value is longer than {max_value} characters" if too_long else _text_problem(raw)
            else:
                problem = "value must be a string, number or boolean"
        if problem:
            # backslashreplace: a key holding a lone surrogate must not break the JSON error itself
            errors.append(f"{str(key)[:60].encode('utf-8', 'backslashreplace').decode()}: {problem}")
            continue
        if key in cleaned and cleaned[key] != raw:
            errors.append(f"{key}: given twice with different values")
        cleaned[key] = raw
    if errors:
        raise ValidationError({field: errors})
    return cleaned


def _text_problem(text: str) -> str | None:
    """Databases store neither NUL characters nor lone surrogates (JSON "\\ud800"): refused here,
    before anything is written, instead of failing in the driver."""
    if "\x00" in text:
        return "value must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "value is not valid Unicode text (it holds a lone surrogate such as \\ud800)"
    return None


def clean_params(items: object) -> dict[str, str]:
    return _clean_mapping(items, "params", MAX_PARAMS, MAX_PARAM_VALUE_LENGTH)


def clean_tags(items: object) -> dict[str, str]:
    return _clean_mapping(items, "tags", MAX_TAGS, MAX_TAG_VALUE_LENGTH)


def as_number(value: str) -> float | None:
    """The numeric reading of a param value (for `params.lr < 0.01`), or None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
