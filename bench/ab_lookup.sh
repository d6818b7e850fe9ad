#!/usr/bin/env bash
# A/B of two lookup binaries (e.g. main's and a branch's release `tablecast`) on one Redis with
# the same 100 k synthetic keys: `wrk -t2 -c50` on random keys, alternating A and B for ROUNDS
# rounds, then B's own /healthz (the HTTP ceiling) and `redis-benchmark` GET on the same Redis
# in each round. Both run at once, so they see
# the same machine; compare the ratios, not the absolute figures.
#
#   bench/ab_lookup.sh OLD_BINARY NEW_BINARY [ROUNDS=3] [SECONDS=8] [BATCH=0]
#
# With BATCH = n, each request is a POST of n random keys (keys/s = req/s × n).
#
# A binary is `tablecast` (run as `tablecast edge serve`) or edge-cache's `tablecast-lookup`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
OLD=$1 NEW=$2 ROUNDS=${3:-3} SECS=${4:-8} BATCH=${5:-0}
cd "$TABLECAST_ROOT"
BIN=$NEW
. bench/lib.sh
R=$(start_redis)
A=$(start_lookup "$R" 64 "$OLD")
B=$(start_lookup "$R" 64 "$NEW")
fill_synthetic "$R"
lookups() {
    WRK_API=synth_100k WRK_KEYS=100000 WRK_BATCH=$BATCH wrk -t2 -c50 -d"${SECS}s" -s bench/lookup.lua "http://127.0.0.1:$1" | tail -1 |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["rps"], "req/s, p99", d["p99_ms"], "ms, errors", d["errors"] + d["non2xx"])'
}
redis_get() { redis-benchmark -p "$R" -t get -c 50 -n $((SECS * 60000)) -r 100000 --csv | tail -1 | tr -d '"' | cut -d, -f2; }
healthz() { wrk -t2 -c50 -d"${SECS}s" "http://127.0.0.1:$1/healthz" | awk '/Requests\/sec/ {print $2, "req/s"}'; }
lookups "$A" >/dev/null; lookups "$B" >/dev/null # warm both near caches
for i in $(seq "$ROUNDS"); do
    echo "round $i  A (old)  $(lookups "$A")"
    echo "round $i  B (new)  $(lookups "$B")"
    echo "round $i  B /healthz  $(healthz "$B")"
    echo "round $i  redis-benchmark GET  $(redis_get) req/s"
done
