"""Turn JSON rows, CSV or Parquet into a typed Arrow table of a feature view, or refuse it whole.

Every error names its row (1-based, header not counted) and column. Conversion is vectorised
(Arrow casts); only when a cast fails does a per-value pass run to say exactly which rows are bad.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError

EVENT_TS = "event_timestamp"
CREATED_TS = "created_timestamp"
TS_TYPE = pa.timestamp("us", tz="UTC")
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_()}
MAX_REPORTED_ERRORS = 50
MAX_ROWS = 5_000_000
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


def is_text(value: str) -> bool:
    """False for a string holding a lone surrogate (JSON ``"\\ud800"``): no database, Arrow column,
    Redis key or UTF-8 response can carry one, so every input path refuses it as a 400."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(value: str) -> str:
    """`value` safe to echo in an error message (a lone surrogate shows as ``\\ud800``)."""
    return value if is_text(value) else value.encode("utf-8", "backslashreplace").decode("ascii", "replace")


class RowErrors(Exception):
    def __init__(self, errors: list[tuple[int, str, str]]):
        super().__init__(f"{len(errors)} invalid values")
        self.errors = errors


def refuse(errors: list[tuple[int | None, str, str]], total_rows: int | None = None) -> ValidationError:
    """One ValidationError that lists the first bad rows and says nothing was written."""
    lines = []
    for row, column, reason in errors[:MAX_REPORTED_ERRORS]:
        where = f"row {row}, column {column}" if row is not None else f"column {column}"
        lines.append(shown(f"{where}: {reason}"))
    more = len(errors) - MAX_REPORTED_ERRORS
    if more > 0:
        lines.append(f"... and {more} more errors.")
    size = f" of {total_rows} rows" if total_rows is not None else ""
    summary = (
        f"The data{size} was refused as a whole ({len(errors)} errors); nothing was written. "
        "Fix the listed rows and send it again."
    )
    return ValidationError({"rows": lines, "detail": [summary]})


def table_schema(join_keys: list[dict], features: list[dict]) -> pa.Schema:
    fields = [pa.field(k["name"], ARROW_TYPES[k["dtype"]], nullable=False) for k in join_keys]
    fields += [pa.field(EVENT_TS, TS_TYPE, nullable=False), pa.field(CREATED_TS, TS_TYPE, nullable=False)]
    fields += [pa.field(f["name"], ARROW_TYPES[f["dtype"]]) for f in features]
    return pa.schema(fields)


# --- reading the raw input ---------------------------------------------------------------------


def parse_payload(data: bytes | list | dict | pa.Table, fmt: str | None = None) -> pa.Table | list:
    """JSON rows stay a list of dicts; CSV and Parquet bytes become an Arrow table."""
    if isinstance(data, pa.Table):  # in-process callers (seed, notebooks, benchmarks)
        return data
    if isinstance(data, dict) and "rows" in data:
        data = data["rows"]
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        raise ValidationError({"rows": ['Send a JSON list of row objects, or {"rows": [...]}.']})
    if not isinstance(data, bytes | bytearray):
        raise ValidationError({"rows": ["Send JSON rows, a CSV file or a Parquet file."]})
    if not data:
        raise ValidationError({"file": ["The file is empty."]})
    if fmt == "parquet" or (fmt is None and data[:4] == b"PAR1"):
        try:
            return pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            raise ValidationError({"file": [f"Not a readable Parquet file: {exc}"]}) from None
    return _read_csv(bytes(data))


def _read_csv(data: bytes) -> pa.Table:
    try:
        text_head = data[:65536].decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": ["The CSV file is not UTF-8 text (or not CSV at all)."]}) from None
    header = next(csv.reader(io.StringIO(text_head)), None)
    if not header or not any(h.strip() for h in header):
        raise ValidationError({"file": ["The CSV file has no header row; its first line must name the columns."]})
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        raise ValidationError({"file": ["The CSV header repeats a column name."]})
    bad: list[tuple[int | None, str, str]] = []

    def invalid_row(row) -> str:
        line = row.number - 1 if row.number is not None else None  # data rows, header not counted
        bad.append((line, "-", f"has {row.actual_columns} fields but the header names {row.expected_columns}"))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, encoding="utf-8", use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=invalid_row),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True, null_values=[""]
            ),
        )
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise ValidationError({"file": [f"The CSV file could not be read: {exc}"]}) from None
    if bad:
        raise refuse(bad)
    return table


# --- per-value converters (used for JSON rows and to locate bad values after a failed cast) ---


def _to_int(v):
    if isinstance(v, bool):
        raise ValueError("is a boolean, not an integer")
    if isinstance(v, int):
        if not -(2**63) <= v < 2**63:
            raise ValueError("is out of the int64 range")
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return _to_int(int(v.strip()))
        except ValueError:
            pass
    raise ValueError(f"{_show(v)} is not an integer")


def _to_float(v):
    if isinstance(v, bool):
        raise ValueError("is a boolean, not a number")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            pass
    raise ValueError(f"{_show(v)} is not a number")


def _to_str(v):
    if isinstance(v, str):
        if not is_text(v):
            raise ValueError(f"{_show(v)} is not valid Unicode text (it holds a lone surrogate)")
        return v
    raise ValueError(f"{_show(v)} is not a string")


def _to_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise ValueError(f"{_show(v)} is not a boolean (use true/false)")


def _to_ts(v):
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return datetime.fromtimestamp(v, tz=UTC)
    if isinstance(v, str):
        try:
            parsed = datetime.fromisoformat(v.strip())
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError(f"{_show(v)} is not a timestamp (use ISO 8601, e.g. 2024-05-01T12:00:00Z)")


CONVERTERS = {"int64": _to_int, "float64": _to_float, "string": _to_str, "bool": _to_bool, "ts": _to_ts}


def _show(v) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _convert_python(values: list, dtype: str, name: str, required: bool):
    convert = CONVERTERS[dtype]
    out, errors = [], []
    for i, v in enumerate(values, start=1):
        if v is None or (isinstance(v, str) and v == "" and dtype != "string"):
            if required:
                errors.append((i, name, "is empty; this column is required"))
            out.append(None)
            continue
        try:
            out.append(convert(v))
        except (ValueError, OverflowError, OSError) as exc:
            errors.append((i, name, str(exc)))
            out.append(None)
    if errors:
        raise RowErrors(errors)
    target = TS_TYPE if dtype == "ts" else ARROW_TYPES[dtype]
    return pa.array(out, type=target)


def convert_column(values: pa.Array | pa.ChunkedArray | list, dtype: str, name: str, required: bool) -> pa.Array:
    """Typed Arrow array for one column, or RowErrors naming every bad row."""
    if isinstance(values, list):
        return _convert_python(values, dtype, name, required)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    target = TS_TYPE if dtype == "ts" else ARROW_TYPES[dtype]
    try:
        if dtype == "ts" and pa.types.is_timestamp(values.type) and values.type.tz is None:
            arr = values.cast(pa.timestamp("us")).cast(TS_TYPE)
        elif dtype == "string" and not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            raise pa.ArrowInvalid("strings only")
        elif dtype in ("int64", "float64", "bool", "ts") and pa.types.is_string(values.type):
            arr = _cast_strings(values, dtype, target)
        else:
            arr = values.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _convert_python(values.to_pylist(), dtype, name, required)
    if required and arr.null_count:
        rows = pc.indices_nonzero(arr.is_null()).to_pylist()
        raise RowErrors([(r + 1, name, "is empty; this column is required") for r in rows])
    return arr


def _cast_strings(values: pa.Array, dtype: str, target: pa.DataType) -> pa.Array:
    stripped = pc.utf8_trim_whitespace(values)
    if dtype == "bool":
        lower = pc.utf8_lower(stripped)
        known = pc.or_(pc.is_in(lower, pa.array(sorted(_TRUE))), pc.is_in(lower, pa.array(sorted(_FALSE))))
        if not pc.all(pc.or_(known, lower.is_null())).as_py():
            raise pa.ArrowInvalid("bad bool")
        return pc.if_else(lower.is_null(), pa.scalar(None, pa.bool_()), pc.is_in(lower, pa.array(sorted(_TRUE))))
    if dtype == "ts":
        return _parse_ts_strings(stripped)
    return stripped.cast(target, safe=True)


def _parse_ts_strings(values: pa.Array) -> pa.Array:
    """ISO 8601 strings with or without an offset (naive means UTC)."""
    try:
        return values.cast(TS_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    return values.cast(pa.timestamp("us")).cast(TS_TYPE)


# --- the whole table ---------------------------------------------------------------------------


def build_table(raw: pa.Table | list, join_keys: list[dict], features: list[dict], now: datetime) -> pa.Table:
    """Validate `raw` against the view's schema; return the canonical table or raise ValidationError."""
    columns, n_rows, errors = _columns_of(raw)
    if n_rows == 0 and not errors:
        raise ValidationError({"rows": ["There are no rows to ingest."]})
    if n_rows > MAX_ROWS:
        raise ValidationError({"rows": [f"At most {MAX_ROWS:,} rows per request; split the data."]})
    expected = [k["name"] for k in join_keys] + [EVENT_TS, CREATED_TS] + [f["name"] for f in features]
    unknown = [c for c in columns if c not in expected]
    for c in unknown:
        errors.append((None, c, "is not in the view's schema (known: " + ", ".join(expected) + ")"))
    for c in expected:
        if c not in columns and c != CREATED_TS:
            errors.append((None, c, "is missing; every key, event_timestamp and feature column is required"))
    if errors:
        raise refuse(errors, n_rows)
    arrays, fields = [], table_schema(join_keys, features)
    specs = [(k["name"], k["dtype"], True) for k in join_keys] + [(EVENT_TS, "ts", True), (CREATED_TS, "ts", True)]
    specs += [(f["name"], f["dtype"], False) for f in features]
    for name, dtype, required in specs:
        if name == CREATED_TS and name not in columns:
            arrays.append(pa.array([now] * n_rows, type=TS_TYPE) if n_rows < 1024 else _repeat_ts(now, n_rows))
            continue
        try:
            arr = convert_column(columns[name], dtype, name, required)
            if dtype == "float64" and pc.any(pc.is_inf(arr)).as_py():
                rows = pc.indices_nonzero(pc.fill_null(pc.is_inf(arr), False)).to_pylist()
                raise RowErrors([(r + 1, name, "is infinite") for r in rows])
            arrays.append(arr)
        except RowErrors as exc:
            errors.extend(exc.errors)
    if errors:
        errors.sort(key=lambda e: (e[0] or 0, e[1]))
        raise refuse(errors, n_rows)
    return pa.Table.from_arrays(arrays, schema=fields)


def _repeat_ts(now: datetime, n: int) -> pa.Array:
    import numpy as np

    micros = int(now.timestamp() * 1_000_000)
    return pa.array(np.full(n, micros, dtype="int64")).cast(pa.timestamp("us")).cast(TS_TYPE)


def _columns_of(raw: pa.Table | list) -> tuple[dict, int, list]:
    if isinstance(raw, pa.Table):
        return {name: raw.column(name) for name in raw.column_names}, raw.num_rows, []
    errors: list = []
    if len(raw) > MAX_ROWS:
        raise ValidationError({"rows": [f"At most {MAX_ROWS:,} rows per request; split the data."]})
    names: dict[str, None] = {}
    for i, row in enumerate(raw, start=1):
        if not isinstance(row, dict):
            errors.append((i, "-", "is not a JSON object of column: value"))
            continue
        for k in row:
            if k not in names and not is_text(k):
                errors.append((i, shown(k), "is not a valid column name (it holds a lone surrogate)"))
            names.setdefault(k, None)
    if errors:
        return {}, len(raw), errors
    columns = {n: [row.get(n) for row in raw] for n in names}
    return columns, len(raw), errors
