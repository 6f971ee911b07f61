#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every test of
# every crate (unit, property, contract, crash and end-to-end HTTP tests),
# then a smoke run of the benchmark harness so it cannot rot (it fails only
# when a scenario cannot run, never on a number).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is needed: install Rust from rustup.rs" >&2; exit 1; }

# The end-to-end Kafka smoke also runs against the tansu broker (a second,
# independent Kafka implementation). Building it takes 10-20 minutes once.
command -v tansu >/dev/null || cargo install tansu --version 0.6.0 --locked --features dynostore,libsql

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
SHOPSTREAM_BENCH_BUILD=debug bench/run.sh --smoke
