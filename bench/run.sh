#!/usr/bin/env bash
# Runs the benchmark scenarios (all of them, or `--only a,b`) against a
# release build, installing the load generators first if they are missing.
#
#   bench/run.sh                    # every scenario, full size (about 30 min + seeding once)
#   bench/run.sh --only ceiling,open-loop
#   bench/run.sh --smoke            # every scenario for a second or two (CI)
#   bench/run.sh --soak-minutes 60  # a longer soak
#
# Results: a table on stdout, bench/results/<scenario>.json, summary.md
# (rows for BENCHMARKS.md) and query-latency.svg. --smoke writes to
# bench/results/smoke/ instead, which is not kept in git.
set -euo pipefail
cd "$(dirname "$0")/.."

# oha (crates.io) drives single endpoints; the virtual users are a goose
# load test built from this workspace (bench/src/main.rs, shopstream-vu).
command -v oha >/dev/null || cargo install oha --version 1.16.0 --locked
# DuckDB (PyPI) opens what the export scenario wrote, as an analyst would.
python3 -c "import duckdb" 2>/dev/null ||
    python3 -m pip install --quiet --user duckdb==1.4.2 ||
    python3 -m pip install --quiet --user --break-system-packages duckdb==1.4.2

# PostgreSQL (Debian) is the appends' peer: the harness starts a cluster
# of its own for the run.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql ||
        { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; }
fi

# 10,000 connections need as many file descriptors on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

out=bench/results
for arg in "$@"; do [ "$arg" = "--smoke" ] && out=bench/results/smoke; done

# Figures come from a release build; the CI smoke run may reuse the debug
# build the tests made (SHOPSTREAM_BENCH_BUILD=debug), since it measures nothing.
if [ "${SHOPSTREAM_BENCH_BUILD:-release}" = debug ]; then
  cargo build --locked -p shopstream -p shopstream-bench
  exec ./target/debug/shopstream-bench suite --out "$out" "$@"
fi
cargo build --release --locked -p shopstream -p shopstream-bench
exec ./target/release/shopstream-bench suite --out "$out" "$@"
