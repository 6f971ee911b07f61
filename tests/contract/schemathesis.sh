#!/usr/bin/env bash
# The HTTP contract as a test: schemathesis generates requests, valid and
# invalid, from the OpenAPI document the server itself serves, and checks
# every answer: no 5xx, only documented status codes and content types, and
# bodies that match the documented schemas. Two runs: anonymous, then with
# an admin's token (so the generated requests get past authorization).
#
#   tests/contract/schemathesis.sh            # ~2-4 minutes on 2 cores
#   SCHEMATHESIS_EXAMPLES=200 tests/contract/schemathesis.sh   # deeper
#
# Rate limits are off: a limited run would answer most requests 429 and
# test nothing else. The admin run leaves out the live tail, whose answer
# to an admin never ends (it is covered by the anonymous run and the HTTP
# suite).
set -euo pipefail
cd "$(dirname "$0")/../.."

examples=${SCHEMATHESIS_EXAMPLES:-25}
schemathesis=$(command -v schemathesis || echo "$(python3 -m site --user-base)/bin/schemathesis")
cargo build --locked --quiet --bin shopstream
binary=target/debug/shopstream

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
SHOPSTREAM_DATA_DIR=$work/data \
SHOPSTREAM_HTTP_ADDR=127.0.0.1:$port \
SHOPSTREAM_RATE_LIMITS=off \
SHOPSTREAM_ADMIN_EMAIL=admin@example.com \
SHOPSTREAM_ADMIN_PASSWORD=contract-admin-1 \
SHOPSTREAM_LOG__LEVEL=warn \
    "$binary" serve >"$work/server.log" 2>&1 &
server=$!
finish() {
    status=$?
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        echo "--- server log (last 50 lines)" >&2
        tail -n 50 "$work/server.log" >&2
    fi
    rm -rf "$work"
}
trap finish EXIT

once() {
    # From the scratch directory: schemathesis keeps a cache where it runs.
    (cd "$work" && "$schemathesis" run "$base/v1/openapi.json" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-examples "$examples" --seed 20261206 --workers 1 \
        --request-timeout 10 --wait-for-schema 120 \
        --generation-database none --no-color --report-dir "$work/report" "$@")
}
# One worker: with two, hypothesis parses lambdas' source in two threads
# at once and CPython 3.11's parser can fail ("AST constructor recursion
# depth mismatch", a "Runtime Error" inside the tool, seen twice in a row).
# A run that found no failure but crashed inside the tool itself is still
# run again, once; any failure of a check fails the test at once.
run() {
    local out=$work/run.out
    if once "$@" | tee "$out"; then
        return 0
    fi
    if grep -q "Runtime Error" "$out" && ! grep -q "^Failures:" "$out" &&
        ! grep -Eq "generated, .*failed" "$out"; then
        echo "schemathesis crashed inside itself without a failing check: once more" >&2
        once "$@"
        return
    fi
    return 1
}

echo "schemathesis: anonymous"
run

token=$(python3 - "$base" <<'PY'
import json, sys, urllib.request
request = urllib.request.Request(
    sys.argv[1] + "/v1/auth/token",
    data=json.dumps({"email": "admin@example.com", "password": "contract-admin-1"}).encode(),
    headers={"content-type": "application/json"},
)
print(json.load(urllib.request.urlopen(request))["access_token"])
PY
)
echo "schemathesis: as an admin"
run --header "Authorization: Bearer $token" --exclude-path /v1/events/live
