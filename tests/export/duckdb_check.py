#!/usr/bin/env python3
"""Opens exports of the event history with DuckDB and says what is in them.

    python3 tests/export/duckdb_check.py events.parquet events.csv events.ndjson

Prints one JSON object per file, on one line each: the row count, the first
and last positions, the count per event type, how many rows hold a password
hash (must be 0: secrets leave redacted), the column types DuckDB saw, and
whether positions are strictly increasing. The callers (the API test suite
and the benchmark) compare these with the event store. The format is taken
from the file's extension.
"""
import json
import sys

import duckdb


def reader(path: str) -> str:
    quoted = "'" + path.replace("'", "''") + "'"
    if path.endswith(".parquet"):
        return f"read_parquet({quoted})"
    if path.endswith(".csv"):
        # Every column typed by the header's sample, data kept as text.
        return f"read_csv({quoted}, header = true, types = {{'data': 'VARCHAR'}})"
    if path.endswith(".ndjson") or path.endswith(".jsonl"):
        return f"read_json({quoted}, format = 'newline_delimited', columns = {{'position': 'UBIGINT', 'type': 'VARCHAR', 'data': 'JSON'}})"
    raise SystemExit(f"{path}: unknown format (.parquet, .csv or .ndjson)")


def check(con: duckdb.DuckDBPyConnection, path: str) -> dict:
    table = reader(path)
    rows, first, last = con.execute(
        f"SELECT count(*), min(position), max(position) FROM {table}"
    ).fetchone()
    types = dict(
        con.execute(f"SELECT type, count(*) FROM {table} GROUP BY type ORDER BY type").fetchall()
    )
    secrets = con.execute(
        f"SELECT count(*) FROM {table} WHERE CAST(data AS VARCHAR) LIKE '%$argon2%'"
    ).fetchone()[0]
    unordered = con.execute(
        f"""SELECT count(*) FROM (
              SELECT position, lag(position) OVER (ORDER BY rowid_) AS before
              FROM (SELECT position, row_number() OVER () AS rowid_ FROM {table})
            ) WHERE before IS NOT NULL AND position <= before"""
    ).fetchone()[0]
    columns = {
        row[0]: str(row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
    }
    return {
        "file": path,
        "rows": rows,
        "first": first,
        "last": last,
        "types": types,
        "secrets": secrets,
        "ordered": unordered == 0,
        "columns": columns,
    }


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    con = duckdb.connect()
    for path in sys.argv[1:]:
        print(json.dumps(check(con, path)), flush=True)


if __name__ == "__main__":
    main()
