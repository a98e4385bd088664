"""Column helpers shared by profiles, drift and quality: kind inference, numeric coercion, category counts, packing.

Columns arrive as numpy arrays: float/int arrays, str arrays, or object arrays decoded from JSON (numbers,
strings, None). Missing is NaN in a numeric column and None (or a float NaN) in a categorical one.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections import Counter
from numbers import Real

import numpy as np

NUMERIC = "numeric"
CATEGORICAL = "categorical"
EXAMPLES = 5  # examples kept for every kind of bad value (wrong type, out of range, new category)


def infer_kind(values: np.ndarray) -> str:
    """numeric for float/int arrays and object arrays holding only numbers (and None); categorical otherwise."""
    kind = values.dtype.kind
    if kind in "iuf":
        return NUMERIC
    if kind != "O":
        return CATEGORICAL  # bool, str, bytes, datetimes
    sample = values[:1000] if len(values) > 1000 else values
    seen = False
    for v in sample:
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, Real):
            return CATEGORICAL
        seen = True
    return NUMERIC if seen else CATEGORICAL


def _is_number(v) -> bool:
    return v is None or (isinstance(v, Real) and not isinstance(v, bool))


def as_float(values: np.ndarray) -> tuple[np.ndarray, int, list]:
    """(float64 array with NaN for missing and wrong-typed values, wrong-type count, up to 5 examples).

    Float64 input comes back as is (no copy); ints are converted once. Object arrays (JSON) go through a fast
    all-numbers path and only fall back to a per-element scan when something is not a number.
    """
    kind = values.dtype.kind
    if kind == "f":
        return (values if values.dtype == np.float64 else values.astype(np.float64)), 0, []
    if kind in "iu":
        return values.astype(np.float64), 0, []
    if kind == "O":
        try:
            if all(map(_is_number, values)):
                return np.array(values, dtype=np.float64), 0, []  # None becomes NaN
        except (TypeError, ValueError, OverflowError):
            pass
    # Strings, bytes, booleans or a mix: every element that is not a real number is a wrong type.
    out = np.full(len(values), np.nan)
    bad, examples = 0, []
    for i, v in enumerate(values.tolist()):
        if v is None:
            continue
        if _is_number(v):
            out[i] = float(v)
        else:
            bad += 1
            if len(examples) < EXAMPLES:
                examples.append(_jsonable(v))
    return out, bad, examples


def count_categories(values: np.ndarray) -> tuple[Counter, int]:
    """(Counter of str(category) -> count, missing count); None and float NaN are missing."""
    if values.dtype.kind in "US":
        uniq, counts = np.unique(values, return_counts=True)
        return Counter({_label(u): int(c) for u, c in zip(uniq.tolist(), counts.tolist(), strict=True)}), 0
    raw = Counter(values.tolist())  # hashing Python objects beats np.unique's sort on object arrays
    counter: Counter = Counter()
    missing = 0
    for v, c in raw.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            missing += c
        else:
            counter[_label(v)] += c
    return counter, missing


def _label(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # 1.0 and 1 are the same class label
    return str(v)


def _jsonable(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def pack(array: np.ndarray, *, compress: bool = False) -> dict:
    """A little-endian array as {"dtype", "data": base64}, zlib-compressed when asked (counts compress well)."""
    data = np.ascontiguousarray(array).tobytes()
    if compress:
        data = zlib.compress(data, 6)
    return {"dtype": array.dtype.newbyteorder("<").str, "zlib": compress, "data": base64.b64encode(data).decode()}


def unpack(packed: dict) -> np.ndarray:
    data = base64.b64decode(packed["data"])
    if packed.get("zlib"):
        data = zlib.decompress(data)
    return np.frombuffer(data, dtype=np.dtype(packed["dtype"]))
