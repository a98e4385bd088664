"""Point-in-time join: the portal's vectorised as-of join vs DuckDB's ASOF JOIN (2 threads), same data.

Data as in ../shared/anchors/asof_gen.py: 100,000 keys x 10 timestamps x 10 float features (1M rows)
and 1,000,000 label rows. DuckDB runs in its own venv (bench/.venvs/duckdb, created on first use);
both results are compared row by row (sorted by label id). Each side first runs --warmup joins
that are not counted (the first joins pay for page faults and the allocator growing its arenas),
then --repeat timed joins; the report gives each side's median with its spread and the speed-up
as the ratio of the medians, with the range the spreads allow (worst: DuckDB's fastest over the
portal's slowest). Prints one JSON object.

    .venv/bin/python bench/features_pit.py                         # full: 2 warm-up + 7 timed joins each
    .venv/bin/python bench/features_pit.py --rows 100000 --repeat 3 --warmup 1   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from apps.features.pit import point_in_time_join  # noqa: E402
from bench.common import ensure_venv  # noqa: E402

FEATURES = [f"f{k}" for k in range(10)]
TS = pa.timestamp("us", tz="UTC")

DUCK = r"""
import json, statistics, sys, time, duckdb
folder, threads, repeat, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
con = duckdb.connect()
con.execute(f"SET threads={threads}")
con.execute(f"CREATE TABLE f AS SELECT * FROM read_parquet('{folder}/features.parquet')")
con.execute(f"CREATE TABLE l AS SELECT * FROM read_parquet('{folder}/labels.parquet')")
q = ("SELECT l.lid, l.id, l.event_timestamp, " + ", ".join(f"f.f{k}" for k in range(10)) +
     " FROM l ASOF LEFT JOIN f ON l.id = f.id AND l.event_timestamp >= f.event_timestamp")
times = []
for i in range(warmup + repeat):
    con.execute("DROP TABLE IF EXISTS r"); t0 = time.perf_counter()
    con.execute("CREATE TABLE r AS " + q)
    if i >= warmup: times.append(time.perf_counter() - t0)
con.execute(f"COPY (SELECT * FROM r ORDER BY lid) TO '{folder}/duck.parquet' (FORMAT parquet)")
print(json.dumps({"version": duckdb.__version__, "threads": threads, "median_s": statistics.median(times),
                  "runs_s": [round(t, 3) for t in times]}))
"""


def generate(folder: Path, n_labels: int) -> None:
    """The anchor's data (same generator, seed and draw order), written without pandas."""
    rng = np.random.default_rng(7)
    n_id, per = 100_000, 10
    t0 = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    span = 365 * 86400 * 10**6
    ids = np.repeat(np.arange(n_id, dtype=np.int64), per)
    ts = t0 + rng.integers(0, span, n_id * per)
    pairs = np.unique(np.stack([ids, ts]), axis=1)
    assert pairs.shape[1] == len(ids), "duplicate (id, ts) pairs: the anchor drops them"  # noqa: S101  benchmark sanity check; benches never run under -O
    cols = {"id": ids, "event_timestamp": pa.array(ts).cast(pa.timestamp("us")).cast(TS)}
    for k in range(10):
        cols[f"f{k}"] = rng.standard_normal(len(ids))
    pq.write_table(pa.table(cols), folder / "features.parquet")
    labels = {
        "lid": np.arange(n_labels, dtype=np.int64),
        "id": rng.integers(0, n_id, n_labels),
        "event_timestamp": pa.array(t0 + rng.integers(0, span, n_labels)).cast(pa.timestamp("us")).cast(TS),
    }
    pq.write_table(pa.table(labels), folder / "labels.parquet")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000, help="label rows")
    parser.add_argument("--repeat", type=int, default=7, help="timed joins per side (at least 3)")
    parser.add_argument("--warmup", type=int, default=2, help="joins per side before the timed ones")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    args = parser.parse_args()
    if args.repeat < 3:
        parser.error("--repeat must be at least 3 (median of 3 or more)")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    duck_python = ensure_venv("duckdb", ["duckdb", "pyarrow", "numpy"])
    with tempfile.TemporaryDirectory(prefix="features-pit-") as tmp:
        folder = Path(tmp)
        generate(folder, args.rows)
        features, labels = pq.read_table(folder / "features.parquet"), pq.read_table(folder / "labels.parquet")
        times, result = [], None
        load_before = [round(x, 2) for x in os.getloadavg()]
        for i in range(args.warmup + args.repeat):
            t0 = time.perf_counter()
            result = point_in_time_join(labels, features, key_columns=["id"], feature_columns=FEATURES,
                                        created_column=None)  # fmt: skip
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        out = subprocess.run([str(duck_python), "-c", DUCK, str(folder), str(args.threads), str(args.repeat),  # noqa: S603  fixed argv (bench venv's python, bench script), no shell
                              str(args.warmup)],
                             check=True, capture_output=True, text=True, env=env)  # fmt: skip
        duck = json.loads(out.stdout.strip().splitlines()[-1])
        theirs = pq.read_table(folder / "duck.parquet")
        ours = result.sort_by("lid")
        identical = ours.num_rows == theirs.num_rows and all(
            ours.column(c).combine_chunks().equals(theirs.column(c).combine_chunks().cast(ours.schema.field(c).type))
            for c in ["lid", "id", "event_timestamp", *FEATURES]
        )
        ours_med, duck_med = statistics.median(times), duck["median_s"]
        report = {
            "benchmark": "point-in-time join",
            "date": started,
            "load_average_1_5_15": [load_before, [round(x, 2) for x in os.getloadavg()]],
            "method": f"{args.warmup} warm-up joins per side, then {args.repeat} timed; portal first, then DuckDB",
            "label_rows": labels.num_rows,
            "feature_rows": features.num_rows,
            "features": len(FEATURES),
            "portal_s": {
                "median": round(ours_med, 3),
                "min": round(min(times), 3),
                "max": round(max(times), 3),
                "runs": [round(t, 3) for t in times],
            },  # fmt: skip
            "duckdb_s": {
                "median": round(duck_med, 3),
                "min": min(duck["runs_s"]),
                "max": max(duck["runs_s"]),
                "runs": duck["runs_s"],
            },  # fmt: skip
            "duckdb": f"{duck['version']} threads={duck['threads']}",
            "speedup_vs_duckdb": {
                "of_medians": round(duck_med / ours_med, 2),
                "worst": round(min(duck["runs_s"]) / max(times), 2),
                "best": round(max(duck["runs_s"]) / min(times), 2),
            },
            "null_feature_rows": ours.column("f0").null_count,
            "identical_results": identical,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
