#!/usr/bin/env python3
"""Baseline for the aggregation benchmark: DuckDB computes the same spec over the same Parquet
files (SQL from fixtures/golden/oracle.py) and writes the rows as JSON, with as many threads as
Tablecast gets. usage: duckdb_run.py --warehouse DIR --spec FILE --out FILE [--threads N] [--timing FILE]

--timing appends the query's own time (seconds, measured inside this process: no interpreter
start or import) to FILE, one line per run, for the like-for-like row."""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures", "golden"))
import tomllib  # noqa: E402

import duckdb  # noqa: E402
from oracle import build_sql, duckdb_source  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--warehouse", required=True)
ap.add_argument("--spec", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--timing")
args = ap.parse_args()
with open(args.spec, "rb") as f:
    spec = tomllib.load(f)
sql, _, _ = build_sql(spec, duckdb_source(spec, args.warehouse))
con = duckdb.connect()
con.execute(f"SET threads = {args.threads}")
started = time.perf_counter()
con.execute(f"COPY ({sql}) TO '{args.out}' (FORMAT json)")
if args.timing:
    with open(args.timing, "a") as f:
        f.write(f"{time.perf_counter() - started}\n")
