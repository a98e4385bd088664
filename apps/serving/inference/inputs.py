"""Request inputs -> ONNX Runtime feeds, checked against the served version's signature.

Two shapes are accepted (shared/API.md, "Predict"):
- positional rows `[[...], ...]` for a model with one input `[batch, N]`;
- named columns `{"column": [...]}`: either one per graph input (each reshaped to `[n, ...]` as its
  signature says), or, for a single 2-D input whose version lists `signature["columns"]`, the
  feature names in that order.

Every refusal is a 400 naming the row, column, shape or dtype (`{"inputs": [message]}`), or a 413
past SERVING_MAX_ROWS. The conversion is numpy's, without Python loops over values; loops run only
to word an error.
"""

from __future__ import annotations

import numpy as np
from django.core.exceptions import ValidationError

from apps.core.errors import TooLarge
from apps.serving.inference.runtime import LoadedModel

_NUMERIC = "biuf"


def _bad(message: str) -> ValidationError:
    return ValidationError({"inputs": [message]})


def _shape_text(model: LoadedModel, name: str) -> str:
    dims = ["batch" if d is None else str(d) for d in model.input_shapes[name]]
    return f"[{', '.join(dims)}]"


def _rows_limit(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise TooLarge(f"{n} rows in one call; the limit is {max_rows}. Split the rows over several calls.")


def _first_non_number(values, path: str = "") -> str:
    stack = [(values, path)]
    while stack:
        value, where = stack.pop(0)
        if isinstance(value, list):
            stack[:0] = [(v, f"{where}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, bool) or not isinstance(value, int | float):
            shown = repr(value) if not isinstance(value, str) else f"the string {value[:40]!r}"
            return f"{shown} at {where or 'the top'}"
        elif isinstance(value, int) and not -(2**63) <= value < 2**63:
            return f"the integer at {where} is too large"
    return "a value of the wrong type"


def _cast(array: np.ndarray, dtype: np.dtype, what: str, name: str) -> np.ndarray:
    if array.dtype.kind == "b":
        raise _bad(f"{what} holds true/false where input {name!r} takes {dtype.name} numbers.")
    if dtype.kind == "f":
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            at = np.argwhere(~np.isfinite(array))[0]
            place = f"row {at[0] + 1}, value {at[1] + 1}" if len(at) > 1 else f"row {at[0] + 1}"
            raise _bad(f"{what} has NaN or infinity at {place}; input {name!r} takes finite numbers.")
        out = array.astype(dtype, copy=False)
        if not np.isfinite(out).all():
            raise _bad(f"{what} has a value too large for {dtype.name} (input {name!r}).")
        return out
    if dtype.kind in "iu":
        if array.dtype.kind == "f" and (not np.isfinite(array).all() or not (array == np.round(array)).all()):
            raise _bad(f"{what} has a fraction, NaN or infinity where input {name!r} takes integers.")
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise _bad(f"{what} has a value outside {dtype.name} (input {name!r}).")
        return array.astype(dtype, copy=False)
    if dtype.kind == "b":
        return array.astype(dtype)
    raise _bad(f"Input {name!r} takes {dtype.name}, which this endpoint cannot build from JSON.")


def _rows(inputs: list, model: LoadedModel, max_rows: int) -> tuple[dict, int]:
    if len(model.input_names) != 1:
        names = ", ".join(repr(n) for n in model.input_names)
        raise _bad(f"{model.label} takes {len(model.input_names)} inputs ({names}); send named columns.")
    name = model.input_names[0]
    shape = model.input_shapes[name]
    n = len(inputs)
    if n == 0:
        raise _bad("Send at least one row.")
    _rows_limit(n, max_rows)
    width = shape[1] if len(shape) == 2 else None
    if len(shape) != 2:
        raise _bad(f"{model.label} takes input {name!r} of shape {_shape_text(model, name)}; send named columns.")
    if not isinstance(inputs[0], list):
        raise _bad(f"Row 1 is not a list of values; {model.label} takes rows of {width or 'N'} numbers.")
    try:
        array = np.asarray(inputs)
    except (ValueError, TypeError, OverflowError):
        array = None
    if array is None or array.ndim != 2 or array.dtype.kind == "O":
        for i, row in enumerate(inputs, start=1):  # ragged, nested or mixed: name the first bad row
            if not isinstance(row, list):
                raise _bad(f"Row {i} is not a list of values; {model.label} takes rows of {width or 'N'} numbers.")
            if width is not None and len(row) != width:
                raise _bad(
                    f"Row {i} has {len(row)} values; {model.label} takes {width} "
                    f"(input {name!r}, shape {_shape_text(model, name)})."
                )
        raise _bad(f"Rows hold a value that is not a number ({_first_non_number(inputs)}).")
    if array.dtype.kind not in _NUMERIC:
        raise _bad(f"Rows hold a value that is not a number ({_first_non_number(inputs)}).")
    if width is not None and array.shape[1] != width:
        raise _bad(
            f"Row 1 has {array.shape[1]} values; {model.label} takes {width} "
            f"(input {name!r}, shape {_shape_text(model, name)})."
        )
    return {name: _cast(array, model.input_dtypes[name], "Rows", name)}, n


def _column_array(values, column: str, max_rows: int) -> np.ndarray:
    if not isinstance(values, list):
        raise _bad(f"Column {column!r} is not a list of values.")
    _rows_limit(len(values), max_rows)
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        raise _bad(f"Column {column!r} is not a rectangular list of numbers.") from None
    if array.dtype.kind not in _NUMERIC:
        raise _bad(f"Column {column!r} holds a value that is not a number ({_first_non_number(values)}).")
    return array


def _columns(inputs: dict, model: LoadedModel, max_rows: int) -> tuple[dict, int]:
    if not inputs:
        raise _bad("Send at least one column.")
    names = model.input_names
    listed = model.signature.get("columns") if isinstance(model.signature, dict) else None
    by_input = set(inputs) == set(names) or not (listed and len(names) == 1)
    wanted = list(names) if by_input else [str(c) for c in listed]
    for column in inputs:
        if column not in wanted:
            raise _bad(f"Unknown column {column!r}; {model.label} takes {', '.join(map(repr, wanted))}.")
    for column in wanted:
        if column not in inputs:
            raise _bad(f"Missing column {column!r}; {model.label} takes {', '.join(map(repr, wanted))}.")
    arrays = {c: _column_array(inputs[c], c, max_rows) for c in wanted}
    counts = {len(a) if a.ndim else 0 for a in arrays.values()}
    if len(counts) != 1:
        sizes = ", ".join(f"{c!r}: {len(a) if a.ndim else 0}" for c, a in arrays.items())
        raise _bad(f"Columns have different numbers of rows ({sizes}).")
    n = counts.pop()
    if n == 0:
        raise _bad("Send at least one row.")
    if not by_input:  # the feature columns of one 2-D input, in the signature's order
        name = names[0]
        shape = model.input_shapes[name]
        if len(shape) != 2 or (shape[1] is not None and shape[1] != len(wanted)):
            raise _bad(f"{model.label} takes input {name!r} of shape {_shape_text(model, name)}; send rows.")
        if any(a.ndim != 1 for a in arrays.values()):
            raise _bad("Each column holds one number per row.")
        stacked = np.stack([arrays[c] for c in wanted], axis=1)
        return {name: _cast(stacked, model.input_dtypes[name], "Columns", name)}, n
    feeds = {}
    for name in names:
        array = arrays[name]
        shape = model.input_shapes[name]
        rest = shape[1:]
        if len(shape) <= 1:
            target = [n]
        elif array.ndim == 1:
            target = [n, *[d or 1 for d in rest]]
            if int(np.prod(target[1:])) != 1:
                raise _bad(
                    f"Column {name!r} has one value per row; input {name!r} has shape {_shape_text(model, name)}."
                )
        else:
            if any(d is not None and d != a for d, a in zip(rest, array.shape[1:], strict=False)) or (
                len(rest) != array.ndim - 1
            ):
                got = "[" + ", ".join(map(str, array.shape)) + "]"
                raise _bad(f"Column {name!r} has shape {got}; input {name!r} has shape {_shape_text(model, name)}.")
            target = list(array.shape)
        feeds[name] = _cast(array.reshape(target), model.input_dtypes[name], f"Column {name!r}", name)
    return feeds, n


def to_feeds(inputs, model: LoadedModel, max_rows: int) -> tuple[dict[str, np.ndarray], int]:
    """ONNX Runtime feeds and the number of rows, or ValidationError (400) / TooLarge (413)."""
    if isinstance(inputs, list):
        return _rows(inputs, model, max_rows)
    if isinstance(inputs, dict):
        return _columns(inputs, model, max_rows)
    raise _bad('Send rows ([[...], ...]) or named columns ({"column": [...]}).')
