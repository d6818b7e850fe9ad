#!/usr/bin/env bash
# Where a lookup's CPU goes, against /healthz on the same process: `wrk -t2 -c50` with
# bench/lookup.lua over 100 k synthetic keys (near cache warm), then the same script with
# WRK_HEALTHZ=1 (the same Lua draw per request, a constant answer), ROUNDS times. For each run,
# the CPU time (user + system) per request of the service (from /proc), of its Redis and of wrk
# itself: on a machine whose cores the client shares, what the client spends per response
# counts against the service's throughput too.
#
#   bench/cpu_per_request.sh TABLECAST_BINARY [ROUNDS=2] [SECONDS=8]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$TABLECAST_ROOT"
BIN=$1 ROUNDS=${2:-2} SECS=${3:-8}
. bench/lib.sh
R=$(start_redis)
A=$(start_lookup "$R")
PR=$(cat "$STATE/redis-$R.pid") PA=$(cat "$STATE/lookup-$A.pid")
DIR=$STATE
fill_synthetic "$R"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # measure HEALTHZ LABEL
    local s0 r0 out
    s0=$(ticks $PA) r0=$(ticks $PR)
    out=$(WRK_API=synth_100k WRK_KEYS=100000 WRK_HEALTHZ=$1 /usr/bin/time -f "%U %S" -o "$DIR/wrk.time" \
        wrk -t2 -c50 -d"${SECS}s" -s bench/lookup.lua "http://127.0.0.1:$A" | tail -1)
    python3 - "$out" "$s0" "$(ticks $PA)" "$r0" "$(ticks $PR)" "$(cat "$DIR/wrk.time")" "$2" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
s0, s1, r0, r1 = map(int, sys.argv[2:6])
wrk = sum(map(float, sys.argv[6].split()))
label, hz, n = sys.argv[7], int(sys.argv[8]), d["requests"]
us = lambda ticks: ticks / hz * 1e6 / n
print(f"{label:8s} {d['rps']:9.0f} req/s   service {us(s1 - s0):6.2f} us/req   redis {us(r1 - r0):5.2f}   wrk {wrk * 1e6 / n:6.2f}")
PY
}
measure 0 warm-up >/dev/null
for _ in $(seq "$ROUNDS"); do
    measure 0 lookup
    measure 1 healthz
done
