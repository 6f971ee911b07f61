#!/usr/bin/env bash
# Rebuild time by hand, binary against binary: `shopstream projections
# rebuild <what>` on a fresh copy of the benchmark data set for each binary
# named, in the order given (name each twice, interleaved, A B B A, so that
# drift in a shared machine's speed falls on both), with wall-clock, CPU and
# peak memory of each run.
#
#   cp target/release/shopstream /some/where/before   # build, then keep a copy
#   bench/rebuild-ab.sh all /some/where/before target/release/shopstream \
#       target/release/shopstream /some/where/before
#   SEEDED=data/bench/full-x5/seeded bench/rebuild-ab.sh catalogue target/release/shopstream
#
# Needs the seeded data set (`bench/run.sh` makes it under data/bench/full/seeded).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
what=${1:?what to rebuild: all or a projection}
shift
seeded=${SEEDED:-$root/data/bench/full/seeded}
copy=$root/data/bench/rebuild-ab
trap 'rm -rf "$copy"' EXIT
for bin in "$@"; do
    rm -rf "$copy"
    mkdir -p "$copy"
    find "$seeded" -maxdepth 1 -type f -exec cp {} "$copy/" \;
    started=$(date +%s.%N)
    /usr/bin/time -f "%U s user, %S s system, %M KiB peak" -o "$copy.time" \
        env SHOPSTREAM_DATA_DIR="$copy" SHOPSTREAM_LOG__FILTER=warn \
        "$bin" projections rebuild "$what" >/dev/null
    ended=$(date +%s.%N)
    printf '%s %s: %.1f s; %s\n' "$bin" "$what" "$(awk "BEGIN { print $ended - $started }")" "$(cat "$copy.time")"
    rm -f "$copy.time"
done
