"""Batch-scoring inputs: their schema, the plan that maps their columns onto a model's inputs, the
chunks they are read in (never the whole file in memory) and the predictions table of a chunk.

No database and no vault here: callers hand in a local file path and a version's signature.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.core.exceptions import ValidationError

FORMATS = ("parquet", "csv")
CSV_BLOCK_BYTES = 4 << 20
PARQUET_MAGIC = b"PAR1"
NAMES_SHOWN = 10


class InputError(Exception):
    """The input cannot be scored as it is (a missing value, a text in a numeric column)."""


def format_of(filename: str, head: bytes) -> str:
    """`parquet` or `csv`, from the file's first bytes (Parquet's magic) or else its name."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if filename.lower().endswith((".parquet", ".pq")):
        raise ValidationError({"file": ["This file is named like Parquet but is not a Parquet file."]})
    return "csv"


def input_schema(path: str, fmt: str, *, field: str = "file") -> pa.Schema:
    """The columns and their types: Parquet's schema (its footer), or the CSV header with types
    inferred from the first block. A file pyarrow cannot read is a field error."""
    try:
        if fmt == "parquet":
            return pq.read_schema(path)
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES))
        schema = reader.schema
        reader.close()
        return schema
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        kind = "Parquet" if fmt == "parquet" else "CSV"
        raise ValidationError({field: [f"This {kind} file cannot be read: {str(exc).splitlines()[0][:300]}"]}) from None


def parquet_rows(path: str) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def _is_numeric(data_type: pa.DataType) -> bool:
    return pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_boolean(data_type)


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def _width(shape) -> int | None:
    """The fixed second dimension of a 2-D input (None when it is symbolic or absent)."""
    if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
        return shape[1]
    return None


def plan_inputs(
    signature: dict, schema: pa.Schema, *, exclude: list[str], keep: list[str], field: str = "file"
) -> dict[str, list[str]]:
    """{model input name: [columns]}, or a ValidationError naming the missing column.

    One 2-D input: the signature's `columns` when present, else every numeric column in file
    order except `exclude` (and `keep`). Several inputs: each reads the column of its own name.
    """
    names = list(schema.names)
    for option, listed in (("exclude", exclude), ("keep", keep)):
        unknown = [c for c in listed if c not in names]
        if unknown:
            raise ValidationError(
                {option: [f"The input has no column {unknown[0]!r}; its columns are {_listed(names)}."]}
            )
    _refuse_output_clashes(signature, keep)
    inputs = (signature or {}).get("inputs") or []
    if not inputs:
        raise ValidationError({"version": ["This version's signature names no inputs; it cannot be scored."]})
    if len(inputs) == 1 and len(inputs[0].get("shape") or [None, None]) == 2:
        return {inputs[0]["name"]: _single_input_columns(signature, inputs[0], schema, exclude, keep, field)}
    missing = [i["name"] for i in inputs if i["name"] not in names]
    if missing:
        raise ValidationError(
            {field: [f"The input has no column {missing[0]!r}; the model reads one column per input, named like "
                     f"its inputs ({_listed([i['name'] for i in inputs])})."]}
        )  # fmt: skip
    return {i["name"]: [i["name"]] for i in inputs}


def _refuse_output_clashes(signature: dict, keep: list[str]) -> None:
    """A kept column named like an output column (`<output>` or `<output>_<i>`) would be overwritten."""
    outputs = [o["name"] for o in (signature or {}).get("outputs") or []]
    for name in keep:
        for output in outputs:
            if name == output or (name.startswith(f"{output}_") and name[len(output) + 1 :].isdigit()):
                raise ValidationError(
                    {"keep": [f"Column {name!r} is named like the model's output {output!r}; rename it to keep it."]}
                )


def _single_input_columns(signature, spec: dict, schema: pa.Schema, exclude, keep, field) -> list[str]:
    wanted = signature.get("columns")
    if wanted:
        missing = [c for c in wanted if c not in schema.names]
        if missing:
            raise ValidationError(
                {field: [f"The input has no column {missing[0]!r}, which the model needs ({len(missing)} of its "
                         f"{len(wanted)} columns are missing: {_listed(missing)})."]}
            )  # fmt: skip
        return list(wanted)
    skipped = set(exclude) | set(keep)
    numeric = [f.name for f in schema if f.name not in skipped and _is_numeric(f.type)]
    width = _width(spec.get("shape"))
    if not numeric or (width is not None and len(numeric) != width):
        raise ValidationError(
            {field: [f"The model takes {width or 'some'} numeric columns; the input has {len(numeric)} "
                     f"({_listed(numeric) or 'none'}) once the columns in exclude and keep are left out. Name "
                     "id and label columns in exclude."]}
        )  # fmt: skip
    return numeric


def read_chunks(
    path: str, fmt: str, *, columns: list[str], numeric: list[str], chunk_rows: int, skip_rows: int = 0
) -> Iterator[pa.Table]:
    """The file's `columns`, `chunk_rows` rows at a time, after the first `skip_rows` (the resume point).

    Chunk boundaries are multiples of `chunk_rows` from the file's start whatever the reader's
    own batches are, so a resumed job cuts the file where its first delivery did.
    """
    pending: list[pa.RecordBatch] = []
    pending_rows, to_skip = 0, skip_rows
    for batch in _batches(path, fmt, columns, numeric, chunk_rows):
        if to_skip:
            if batch.num_rows <= to_skip:
                to_skip -= batch.num_rows
                continue
            batch, to_skip = batch.slice(to_skip), 0
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending)


def _batches(path: str, fmt: str, columns: list[str], numeric: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    if fmt == "parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns)
        return
    convert = pacsv.ConvertOptions(include_columns=columns, column_types={c: pa.float64() for c in numeric})
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES), convert_options=convert)
    try:
        yield from reader
    except pa.ArrowInvalid as exc:
        raise InputError(f"The CSV file cannot be read past this point: {str(exc).splitlines()[0][:300]}") from None
    finally:
        reader.close()


def count_rows(path: str, fmt: str, first_column: str) -> int:
    """Rows in the file, reading one column (a CSV's row count is known only by reading it)."""
    if fmt == "parquet":
        return parquet_rows(path)
    return sum(b.num_rows for b in _batches(path, fmt, [first_column], [], 1 << 16))


def feeds_of(table: pa.Table, plan: dict[str, list[str]], signature: dict, start: int) -> dict[str, np.ndarray]:
    """The model's feeds for one chunk: one 2-D array per input (or the input's own shape)."""
    feeds: dict[str, np.ndarray] = {}
    for spec in signature.get("inputs") or []:
        dtype = np.dtype(spec.get("dtype") or "float32")
        arrays = [_column_values(table, name, dtype, start) for name in plan[spec["name"]]]
        shape = spec.get("shape") or []
        if len(plan) == 1 and len(shape) == 2:
            feeds[spec["name"]] = np.column_stack(arrays) if arrays else np.empty((table.num_rows, 0), dtype)
        else:
            feeds[spec["name"]] = arrays[0].reshape(-1, 1) if len(shape) == 2 else arrays[0]
    return feeds


def _column_values(table: pa.Table, name: str, dtype: np.dtype, start: int) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        first = start + int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(
            f"Column {name!r} has {column.null_count} empty value(s) from row {first} on (rows count from 0); "
            "fill them before scoring."
        )
    try:
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"Column {name!r} is not numeric near row {start}: {exc}") from None


def output_columns(name: str, value: np.ndarray, rows: int) -> dict[str, np.ndarray]:
    """One output as columns: `<name>` when it is one value per row, else `<name>_<i>`."""
    value = np.asarray(value)
    if value.ndim <= 1:
        return {name: value.reshape(rows)}
    flat = value.reshape(rows, -1)
    return {f"{name}_{i}": flat[:, i] for i in range(flat.shape[1])}


def predictions_of(outputs: dict[str, np.ndarray], order: list[str], *, start: int, keys: pa.Table | None) -> pa.Table:
    """A chunk's predictions: its `keep` columns (else a `row` index), then every output."""
    rows = next(iter(outputs.values())).shape[0] if outputs else 0
    columns: dict[str, pa.Array | np.ndarray] = {}
    if keys is not None and keys.num_columns:
        for name in keys.column_names:
            columns[name] = keys.column(name).combine_chunks()
    else:
        columns["row"] = np.arange(start, start + rows, dtype=np.int64)
    for name in order:
        columns.update(output_columns(name, outputs[name], rows))
    return pa.table(columns)
