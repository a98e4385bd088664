"""Point-in-time (as-of) join, vectorised with numpy and Arrow; no Django, no Python row loop.

For each label row the join picks the feature row of the same entity key with the greatest event
timestamp at or before the label's timestamp (ties broken by the latest created timestamp), and
only if it is within the TTL. Keys and timestamps are packed into one sortable int64 so that one
sort of the features and one binary search of the labels do the whole join.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PACK_LIMIT = 2**62
THREADS = 2  # numpy sorts and Arrow takes release the GIL; two threads like the DuckDB baseline
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="pit")
    return _pool


def _ts_micros(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_timestamp(arr.type):
        arr = (
            arr.cast(pa.timestamp("us", tz=arr.type.tz)).view(pa.int64())
            if arr.type.unit != "us"
            else arr.view(pa.int64())
        )
    return arr.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _encode_one(labels: pa.Array, feats: pa.Array) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense integer codes for one key column; label keys unseen in the features get -1."""
    if pa.types.is_integer(feats.type) and pa.types.is_integer(labels.type):
        fk = feats.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        lk = labels.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if len(fk) == 0:
            return np.full(len(lk), -1, np.int64), fk, 1
        lo, hi = int(fk.min()), int(fk.max())
        if lo >= 0 and hi < 4 * max(len(fk), 1024):  # already dense enough: use the keys themselves
            lcodes = np.where((lk >= 0) & (lk <= hi), lk, -1)
            return lcodes, fk, hi + 1
        uniq = np.unique(fk)
        fcodes = np.searchsorted(uniq, fk)
        pos = np.searchsorted(uniq, lk).clip(0, len(uniq) - 1)
        return np.where(uniq[pos] == lk, pos, -1), fcodes, len(uniq)
    value_set = pc.unique(feats)
    fcodes = pc.index_in(feats, value_set=value_set).to_numpy(zero_copy_only=False).astype(np.int64)
    lcodes = pc.fill_null(pc.index_in(labels.cast(feats.type), value_set=value_set), -1)
    return lcodes.to_numpy(zero_copy_only=False).astype(np.int64), fcodes, len(value_set)


def encode_keys(label_keys: list, feature_keys: list) -> tuple[np.ndarray, np.ndarray, int]:
    """Combine one or more key columns into one dense code per row (composite keys supported)."""
    lcodes = fcodes = None
    n = 1
    for lcol, fcol in zip(label_keys, feature_keys, strict=True):
        lcol = lcol.combine_chunks() if isinstance(lcol, pa.ChunkedArray) else lcol
        fcol = fcol.combine_chunks() if isinstance(fcol, pa.ChunkedArray) else fcol
        lc, fc, k = _encode_one(lcol, fcol)
        if lcodes is None:
            lcodes, fcodes, n = lc, fc, k
            continue
        if n * k >= _PACK_LIMIT:  # re-densify before combining
            combined = np.concatenate([fcodes, lcodes[lcodes >= 0]])
            uniq = np.unique(combined)
            fcodes = np.searchsorted(uniq, fcodes)
            lcodes = np.where(lcodes >= 0, np.searchsorted(uniq, np.maximum(lcodes, 0)), -1)
            n = len(uniq)
        lcodes = np.where((lcodes >= 0) & (lc >= 0), lcodes * k + lc, -1)
        fcodes = fcodes * k + fc
        n = n * k
    return lcodes, fcodes, n


def _group_by_key(codes: np.ndarray, n_codes: int) -> np.ndarray:
    """A permutation putting equal key codes together (ascending; unknown keys last).

    Two 16-bit radix passes (numpy's stable sort is a radix sort for 16-bit integers): 17 ms for
    1M labels against 77 ms for a full argsort of the packed (key, time) values.
    """
    codes = np.where(codes >= 0, codes, n_codes)
    if n_codes >= 2**32:
        return np.argsort(codes, kind="stable")
    order = np.argsort((codes & 0xFFFF).astype(np.uint16), kind="stable")
    if n_codes >= 2**16:
        order = order[np.argsort((codes[order] >> 16).astype(np.uint16), kind="stable")]
    return order


def asof_indices(
    label_codes: np.ndarray,
    label_ts: np.ndarray,
    feature_codes: np.ndarray,
    feature_ts: np.ndarray,
    feature_created: np.ndarray | None = None,
    n_codes: int | None = None,
    ttl_micros: int = 0,
) -> np.ndarray:
    """Index into the feature rows for each label row, or -1 where no value may be used."""
    n_labels = len(label_codes)
    if len(feature_codes) == 0 or n_labels == 0:
        return np.full(n_labels, -1, np.int64)
    n_codes = n_codes or int(feature_codes.max()) + 1
    t0 = min(int(feature_ts.min()), int(label_ts.min()))
    span = max(int(feature_ts.max()), int(label_ts.max())) - t0 + 1
    compressed = n_codes * span >= _PACK_LIMIT
    if not compressed:
        f_rel, l_rel = feature_ts - t0, label_ts - t0
    else:  # rank-compress the timestamps so that key and time still pack into one int64
        all_ts = np.unique(np.concatenate([feature_ts, label_ts]))
        f_rel, l_rel, span = np.searchsorted(all_ts, feature_ts), np.searchsorted(all_ts, label_ts), len(all_ts)
    fpack = feature_codes * span + f_rel
    lpack = np.where(label_codes >= 0, label_codes * span + l_rel, -1)
    # Both orderings at once (numpy releases the GIL while sorting).
    label_sort = _executor().submit(_group_by_key, label_codes, n_codes)
    # Offline partitions usually hold each key's rows together; the stable sort (timsort) merges
    # such runs in near-linear time (11 ms against 56 ms for 1M rows in 100k key blocks) and costs
    # ~10% more than introsort on random data.
    order = np.argsort(fpack, kind="stable")
    sorted_pack = fpack[order]
    if feature_created is not None and len(sorted_pack) > 1 and (sorted_pack[1:] == sorted_pack[:-1]).any():
        order = np.lexsort((feature_created, fpack))  # equal (key, ts): the latest created wins
        sorted_pack = fpack[order]
    # Work in key-grouped label order: each key's binary searches land in the same few cache
    # lines and every check below reads memory sequentially; only the final scatter back to the
    # caller's row order is random. (Correctness does not depend on the order.)
    lorder = label_sort.result()
    lsorted = lpack[lorder]
    pos = np.searchsorted(sorted_pack, lsorted, side="right") - 1
    hit = sorted_pack[np.maximum(pos, 0)]
    valid = (lsorted >= 0) & (pos >= 0) & (hit // span == lsorted // span)
    if ttl_micros:
        if compressed:  # noqa: SIM108 - two very different computations
            age = label_ts[lorder] - feature_ts[order[np.maximum(pos, 0)]]
        else:  # the packed values hold the time offsets already
            age = lsorted % span - hit % span
        valid &= age <= ttl_micros
    idx = np.empty(n_labels, np.int64)
    idx[lorder] = np.where(valid, order[np.maximum(pos, 0)], -1)
    return idx


def take_features(features: pa.Table, columns: list[str], idx: np.ndarray) -> list[pa.Array]:
    """Feature columns aligned to the label rows; null where idx is -1 (never a future value)."""
    missing = idx < 0
    if features.num_rows == 0:
        return [pa.nulls(len(idx), features.schema.field(c).type) for c in columns]
    if not missing.any():
        indices = pa.array(idx)
        return list(_executor().map(lambda c: features.column(c).take(indices), columns))
    indices = pa.array(np.where(missing, 0, idx))  # null indices make Arrow's take ~6x slower
    present = pa.array(~missing)

    def one(c):
        taken = features.column(c).take(indices)
        return pc.if_else(present, taken, pa.scalar(None, taken.type))

    return list(_executor().map(one, columns))


def point_in_time_join(
    labels: pa.Table,
    features: pa.Table,
    *,
    key_columns: list[str],
    feature_columns: list[str],
    label_ts_column: str = "event_timestamp",
    feature_ts_column: str = "event_timestamp",
    created_column: str | None = "created_timestamp",
    ttl_micros: int = 0,
    output_names: list[str] | None = None,
) -> pa.Table:
    """`labels` with the as-of feature values appended (one output row per label row, same order)."""
    lcodes, fcodes, n = encode_keys([labels.column(k) for k in key_columns], [features.column(k) for k in key_columns])
    created = None
    if created_column and created_column in features.column_names:
        created = _ts_micros(features.column(created_column))
    idx = asof_indices(
        lcodes,
        _ts_micros(labels.column(label_ts_column)),
        fcodes,
        _ts_micros(features.column(feature_ts_column)),
        created,
        n,
        ttl_micros,
    )
    out = labels
    for name, arr in zip(output_names or feature_columns, take_features(features, feature_columns, idx), strict=True):
        out = out.append_column(name, arr)
    return out
