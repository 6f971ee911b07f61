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

# From PyPI, pinned: the compose files are checked against the Compose
# Specification's schema (there may be no Docker engine to ask), the mail
# tests talk to a real SMTP server (aiosmtpd), and schemathesis tests the
# served API against its OpenAPI document, exports are opened with DuckDB
# as an analyst would, and selenium drives the operator console.
for package in check-jsonschema==0.39.0 aiosmtpd==1.4.6 schemathesis==4.32.5 duckdb==1.4.2 selenium==4.38.0; do
    python3 -c "import importlib.metadata as m, sys; sys.exit(m.version('${package%%==*}') != '${package##*==}')" 2>/dev/null ||
        python3 -m pip install --quiet --user "$package" ||
        python3 -m pip install --quiet --user --break-system-packages "$package"
done
# From Debian: Prometheus, whose promtool unit-tests the alerting rules and
# whose server checks them end to end against a running service; Chromium
# and its driver, in which the operator console is tested headless.
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromedriver >/dev/null || missing+=(chromium chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
        { $sudo apt-get update && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

python3 -m check_jsonschema --builtin-schema vendor.compose-spec \
    docker-compose.yml docker-compose.embedded.yml

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
tests/contract/schemathesis.sh
(cd infra/monitoring && promtool check rules alerts.yml && promtool test rules alerts.test.yml)
python3 tests/monitoring/alerts_e2e.py target/debug/shopstream
python3 tests/console/console_e2e.py target/debug/shopstream
SHOPSTREAM_BENCH_BUILD=debug bench/run.sh --smoke
