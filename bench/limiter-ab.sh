#!/usr/bin/env bash
# The rate limiter's cost by hand: two `shopstream serve` processes on copies
# of the benchmark data set, the first with limits off, the second with them
# `on` (or `off` again: an A/A run of the method itself), measured with oha
# in rounds of first, second, second, first (5 s each).
#
#   bench/limiter-ab.sh on 3     # limiter on vs off, three rounds
#   bench/limiter-ab.sh off 3    # A/A
#
# Needs a release build (`cargo build --release -p shopstream`), oha, and the
# seeded data set (`bench/run.sh` makes it under data/bench/full/seeded).
set -euo pipefail
second=${1:-on}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/shopstream
seeded=$root/data/bench/full/seeded
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

serve() { # name port limits
  cp -r "$seeded" "$work/$1"
  SHOPSTREAM_RATE_LIMITS=$3 SHOPSTREAM_LIMITS__API_PER_MINUTE=2000000000 \
    SHOPSTREAM_DATA_DIR=$work/$1 SHOPSTREAM_HTTP_ADDR=127.0.0.1:$2 \
    "$bin" serve >"$work/$1.log" 2>&1 &
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$2/v1/products?limit=1" >"$work/$1.json" && return
    sleep 1
  done
  echo "server $1 did not start" >&2
  exit 1
}
serve a 18081 off
serve b 18082 "$second"
id=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['items'][0]['product_id'])" "$work/a.json")
rps() {
  oha --no-tui --output-format json -z 5s -c 256 "http://127.0.0.1:$1/v1/products/$id" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['summary']['requestsPerSec'])"
}
# Both answers cached before anything is measured.
curl -sf "http://127.0.0.1:18081/v1/products/$id" >/dev/null
curl -sf "http://127.0.0.1:18082/v1/products/$id" >/dev/null
for round in $(seq "$rounds"); do
  a1=$(rps 18081); b1=$(rps 18082); b2=$(rps 18082); a2=$(rps 18081)
  python3 -c "import sys; a1,a2,b1,b2=map(float,sys.argv[1:5]); print('round %s: first %.0f %.0f, second (%s) %.0f %.0f: x%.3f' % (sys.argv[5], a1, a2, sys.argv[6], b1, b2, (b1+b2)/(a1+a2)))" \
    "$a1" "$a2" "$b1" "$b2" "$round" "$second"
done
